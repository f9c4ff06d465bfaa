#!/usr/bin/env node
// Entry point; the TypeScript sources are compiled to dist/ by `npm run build` (run by `npm ci` via `prepare`).
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
