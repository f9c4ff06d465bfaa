/**
 * Worker thread body for prefetch.ts: builds the BatchSource described by `workerData` and answers
 * each {epoch, b} request with that batch, transferring its buffers (no copy back).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BatchSource } from './batches.js';
import type { BatchReply, BatchRequest, WorkerInit } from './prefetch.js';

const init = workerData as WorkerInit;
const source = new BatchSource(init.split, init.specs, init.batchSize, { shuffle: init.shuffle, seed: init.seed, workers: 0 });

parentPort!.on('message', (m: BatchRequest) => {
  let reply: BatchReply;
  try {
    reply = { b: m.b, batch: source.batch(m.epoch, m.b) };
  } catch (e) {
    parentPort!.postMessage({ b: m.b, error: (e as Error).message } satisfies BatchReply);
    return;
  }
  parentPort!.postMessage(reply, [reply.batch.x.buffer as ArrayBuffer, reply.batch.y.buffer as ArrayBuffer]);
});
