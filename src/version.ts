/** The tool's version (kept equal to package.json's). */
export const TOOL_VERSION = '0.1.0';
