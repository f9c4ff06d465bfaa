/**
 * Preloaded into a `pipe` process by bench/startup.ts (`node --import`): at exit, writes the
 * process's CPU time (user + system, microseconds, `process.cpuUsage()`) and the npm packages it
 * loaded through the CommonJS loader (tfjs, sharp, undici, ... are CommonJS) to the file named by
 * PIPE_STARTUP_PROBE_OUT.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const out = process.env['PIPE_STARTUP_PROBE_OUT'];
if (out) {
  process.on('exit', () => {
    const { user, system } = process.cpuUsage();
    const cache = createRequire(import.meta.url).cache;
    const packages = [...new Set(Object.keys(cache).map((k) => /node_modules\/((@[^/]+\/)?[^/]+)/.exec(k)?.[1]).filter((p): p is string => p !== undefined))].sort();
    writeFileSync(out, JSON.stringify({ cpuMicros: user + system, packages }));
  });
}
