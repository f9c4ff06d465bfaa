/**
 * Tests for src/data/download.ts against a local node:http server serving random bytes made here:
 * checksums (computed here with node:crypto), atomic rename, no `.part` left behind, resume with an
 * HTTP Range request after a dropped connection, HTTP errors, and skipping a good existing file.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';

import { download, DownloadError } from '../../src/data/download.js';

const BODY = randomBytes(300 * 1024 + 17);
const SHA256 = createHash('sha256').update(BODY).digest('hex');
const MD5 = createHash('md5').update(BODY).digest('hex');
const CUT = 100 * 1024; // bytes sent before the connection is dropped in the resume case

/** One request as the server saw it; `partSize` is the size of `watchPart` when it arrived. */
interface Seen { url: string; range: string | undefined; partSize: number | undefined }

/**
 * Paths: /file.bin serves BODY (honouring `Range: bytes=n-` with 206), /drop-once.bin drops the
 * first connection after CUT bytes then behaves like /file.bin, /moved.bin redirects (302) to
 * /file.bin, anything else is 404.
 */
let seen: Seen[] = [];
let dropped = false;
/** The `.part` file of the download under test; its size is recorded at each request. */
let watchPart = '';
let server: Server;
let base = '';
let tmp = '';

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '';
  const range = req.headers.range;
  let partSize: number | undefined;
  try {
    partSize = watchPart ? statSync(watchPart).size : undefined;
  } catch {
    partSize = undefined;
  }
  seen.push({ url, range, partSize });
  if (url === '/moved.bin') {
    res.writeHead(302, { location: '/file.bin' });
    res.end();
    return;
  }
  if (url === '/file.bin' || url === '/drop-once.bin') {
    if (url === '/drop-once.bin' && !dropped) {
      dropped = true;
      // Announce the full length, send the first CUT bytes, then kill the socket.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY.length) });
      res.write(BODY.subarray(0, CUT), () => {
        // Give the client a moment to receive and write what was sent.
        setTimeout(() => res.destroy(), 50);
      });
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (m) {
      const start = Number(m[1]);
      if (start >= BODY.length) {
        res.writeHead(416, { 'content-range': `bytes */${BODY.length}` });
        res.end();
        return;
      }
      res.writeHead(206, {
        'content-type': 'application/octet-stream',
        'content-length': String(BODY.length - start),
        'content-range': `bytes ${start}-${BODY.length - 1}/${BODY.length}`,
      });
      res.end(BODY.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY.length) });
    res.end(BODY);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found');
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'download-test-'));
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  await rm(tmp, { recursive: true, force: true });
});

beforeEach(() => {
  seen = [];
  dropped = false;
  watchPart = '';
});

let n = 0;
const destPath = (): string => path.join(tmp, `case-${++n}`, 'out.bin');

describe('download', () => {
  it('sha256 match: the file lands at dest, no .part left', async () => {
    const dest = destPath();
    const progress: number[] = [];
    await download(`${base}/file.bin`, dest, {
      checksum: { algorithm: 'sha256', hex: SHA256 },
      onProgress: (p) => progress.push(p.received),
    });
    assert.ok((await readFile(dest)).equals(BODY));
    assert.equal(existsSync(`${dest}.part`), false);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.range, undefined);
    assert.equal(progress.at(-1), BODY.length);
  });

  it('md5 match: the file lands at dest, no .part left', async () => {
    const dest = destPath();
    await download(`${base}/file.bin`, dest, { checksum: { algorithm: 'md5', hex: MD5 } });
    assert.ok((await readFile(dest)).equals(BODY));
    assert.equal(existsSync(`${dest}.part`), false);
  });

  it('checksum mismatch: DownloadError, dest absent, no .part left', async () => {
    const dest = destPath();
    const wrong = createHash('sha256').update('something else').digest('hex');
    await assert.rejects(download(`${base}/file.bin`, dest, { checksum: { algorithm: 'sha256', hex: wrong } }), (e: unknown) => {
      assert.ok(e instanceof DownloadError, String(e));
      assert.ok(e.message.includes(`${base}/file.bin`), e.message);
      assert.ok(e.message.includes(wrong), e.message);
      assert.ok(e.message.includes(SHA256), e.message);
      return true;
    });
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  it('a stale existing dest is downloaded again and replaced', async () => {
    const dest = destPath();
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(dest, Buffer.from('stale content'));
    await download(`${base}/file.bin`, dest, { checksum: { algorithm: 'md5', hex: MD5 } });
    assert.ok((await readFile(dest)).equals(BODY));
    assert.equal(seen.length, 1);
    assert.equal(existsSync(`${dest}.part`), false);
  });

  it('a checksum mismatch never touches an existing dest', async () => {
    const dest = destPath();
    await mkdir(path.dirname(dest), { recursive: true });
    const old = Buffer.from('previous content');
    await writeFile(dest, old);
    const wrong = createHash('md5').update('neither').digest('hex');
    await assert.rejects(download(`${base}/file.bin`, dest, { checksum: { algorithm: 'md5', hex: wrong } }), DownloadError);
    assert.equal(seen.length, 1);
    assert.ok((await readFile(dest)).equals(old));
    assert.equal(existsSync(`${dest}.part`), false);
  });

  it('resumes with Range: bytes=<written>- after a dropped connection', async () => {
    const dest = destPath();
    watchPart = `${dest}.part`;
    const progress: Array<{ received: number; total: number | undefined }> = [];
    await download(`${base}/drop-once.bin`, dest, {
      checksum: { algorithm: 'sha256', hex: SHA256 },
      onProgress: (p) => progress.push({ received: p.received, total: p.total }),
    });
    assert.equal(dropped, true);
    assert.equal(seen.length, 2, `expected one retry, saw ${seen.length} request(s)`);
    assert.equal(seen[0]!.range, undefined);
    assert.equal(seen[0]!.partSize, undefined, 'no .part before the first request');
    const retry = seen[1]!;
    const written = retry.partSize;
    assert.ok(written !== undefined && written > 0 && written <= CUT, `.part held ${written} bytes at the retry (at most ${CUT} were sent)`);
    assert.equal(retry.range, `bytes=${written}-`);
    assert.ok((await readFile(dest)).equals(BODY), 'final file equals the original');
    assert.equal(existsSync(`${dest}.part`), false);
    assert.equal(progress.at(-1)?.received, BODY.length);
    assert.equal(progress.at(-1)?.total, BODY.length);
  });

  it('a failure claims a kept .part only when there is one, with its size', async () => {
    const dest = destPath();
    watchPart = `${dest}.part`;
    await assert.rejects(download(`${base}/drop-once.bin`, dest, { maxAttempts: 1 }), (e: unknown) => {
      assert.ok(e instanceof DownloadError, String(e));
      const kept = statSync(`${dest}.part`).size;
      assert.ok(kept > 0 && kept <= CUT);
      assert.ok(e.message.endsWith(`(partial data kept in ${dest}.part, ${kept} bytes; the next run resumes it)`), e.message);
      return true;
    });
    // Nothing listening: no byte arrives, so no .part is claimed (or left).
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const dest2 = destPath();
    await assert.rejects(download(`http://127.0.0.1:${port}/x.bin`, dest2, { maxAttempts: 1 }), (e: unknown) => {
      assert.ok(e instanceof DownloadError, String(e));
      assert.doesNotMatch(e.message, /partial|\.part/);
      return true;
    });
    assert.equal(existsSync(`${dest2}.part`), false);
  });

  it('follows a redirect', async () => {
    const dest = destPath();
    await download(`${base}/moved.bin`, dest, { checksum: { algorithm: 'sha256', hex: SHA256 } });
    assert.deepEqual(seen.map((r) => r.url), ['/moved.bin', '/file.bin']);
    assert.ok((await readFile(dest)).equals(BODY));
  });

  it('HTTP 404: DownloadError naming the URL, nothing left behind', async () => {
    const dest = destPath();
    const url = `${base}/missing.bin`;
    await assert.rejects(download(url, dest, { checksum: { algorithm: 'md5', hex: MD5 } }), (e: unknown) => {
      assert.ok(e instanceof DownloadError, String(e));
      assert.ok(e.message.includes(url), e.message);
      assert.match(e.message, /404/);
      return true;
    });
    assert.equal(seen.length, 1, 'an HTTP error is not retried');
    assert.equal(existsSync(dest), false);
  });

  it('an existing good dest is not downloaded again', async () => {
    const dest = destPath();
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(dest, BODY);
    await download(`${base}/file.bin`, dest, { checksum: { algorithm: 'sha256', hex: SHA256 } });
    await download(`${base}/file.bin`, dest, { checksum: { algorithm: 'md5', hex: MD5 } });
    assert.equal(seen.length, 0);
    assert.ok((await readFile(dest)).equals(BODY));
  });
});
