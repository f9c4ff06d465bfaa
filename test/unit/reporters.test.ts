/**
 * The terminal reporters (src/runner/reporters.ts), driven by hand-made events with fixed times:
 * which output a stream gets, finished epochs kept on screen while the batch line updates, the
 * stage and run ETA, plain output line per event, the JSON stream.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RunEvents, type RunEvent } from '../../src/runner/events.js';
import { chainLines, epochLine, formatDuration, jsonReporter, outputMode, TerminalReporter } from '../../src/runner/reporters.js';

/** A listr2 task stand-in that records every output it is given. */
function fakeTask(title: string): { title: string; output: string; outputs: string[] } {
  const t = { title, outputs: [] as string[], get output(): string { return this.outputs.at(-1) ?? ''; }, set output(v: string) { this.outputs.push(v); } };
  return t;
}

const sink = (): NodeJS.WritableStream & { text: string } => {
  const s = { text: '', write(chunk: string): boolean { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WritableStream & { text: string };
};

const start: RunEvent = { time: 0, type: 'run-start', runId: 'r', runDir: '/r', pipeline: 'p', engine: 'wasm', engineDetail: 'wasm [CPU]', store: '/s', stages: [
  { name: 'head', kind: 'freeze-train', decision: 'run', reason: 'never run', epochs: 2 },
  { name: 'finetune', kind: 'unfreeze-train', decision: 'run', reason: 'never run', epochs: 3 },
] };
const batch = (time: number, epoch: number, b: number): RunEvent => ({ time, type: 'stage-batch', stage: 'head', epoch, epochs: 2, batch: b, batches: 10, loss: 2.5, images_per_second: 640 });
const epoch = (time: number, e: number): RunEvent => ({ time, type: 'stage-epoch', stage: 'head', epoch: e, epochs: 2, train_loss: 1.23456, train_accuracy: 0.5, test_loss: 1.5, test_accuracy: 0.4567, lr: 0.001, images_per_second: 640.4, keys: {} });

describe('reporters', () => {
  it('output mode by capability: live only on a terminal with columns; json and quiet when asked', () => {
    assert.equal(outputMode({ isTTY: true, columns: 120 }, {}), 'live');
    assert.equal(outputMode({ isTTY: true, columns: 0 }, {}), 'plain');
    assert.equal(outputMode({ isTTY: true }, {}), 'plain');
    assert.equal(outputMode({ isTTY: false, columns: 80 }, {}), 'plain');
    assert.equal(outputMode({ isTTY: true, columns: 80 }, { plain: true }), 'plain');
    assert.equal(outputMode({ isTTY: true, columns: 80 }, { logFormat: 'json', quiet: true }), 'json');
    assert.equal(outputMode({ isTTY: true, columns: 80 }, { quiet: true }), 'quiet');
  });

  it('epoch line and durations', () => {
    assert.equal(epochLine(epoch(0, 1) as Extract<RunEvent, { type: 'stage-epoch' }>), 'epoch 1/2: train loss 1.2346 acc 50.00% | test loss 1.5000 acc 45.67% | lr 1.0e-3 | 640 images/s');
    assert.deepEqual([formatDuration(42.4), formatDuration(185), formatDuration(3725)], ['42s', '3m05s', '1h02m']);
  });

  it('live: finished epochs stay (one line each) under the updating batch line, with stage and run ETA', () => {
    const r = new TerminalReporter('live', sink());
    const task = fakeTask('head (freeze-train)');
    const shown = (): string => task.outputs.at(-1) ?? '';
    r.on(start);
    r.attach('head', task);
    r.on(batch(1000, 1, 1)); // first batch: the ETA's origin, no ETA yet
    assert.equal(shown(), 'epoch 1/2 batch 1/10 loss 2.5000 | 640 images/s');
    // 5 batches later, 1 s each: stage has (2-1)*10 + (10-6) = 14 batches left = 14 s; finetune's 3 epochs of 10 batches add 30 s.
    r.on(batch(6000, 1, 6));
    assert.equal(shown(), 'epoch 1/2 batch 6/10 loss 2.5000 | 640 images/s | stage eta 14s, run eta ~44s');
    r.on(batch(6050, 1, 7)); // within 120 ms of the last redraw: not redrawn yet
    assert.equal(task.outputs.length, 2);
    r.on(epoch(10000, 1));
    assert.equal(shown(), epochLine(epoch(10000, 1) as Extract<RunEvent, { type: 'stage-epoch' }>));
    r.on(batch(11000, 2, 1));
    const lines = shown().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^epoch 1\/2: train loss/);
    assert.match(lines[1]!, /^epoch 2\/2 batch 1\/10 /);
    r.on(epoch(20000, 2));
    assert.deepEqual(shown().split('\n').map((l) => l.slice(0, 9)), ['epoch 1/2', 'epoch 2/2']);
  });

  it('plain: each epoch and note is one line; batch lines at most every interval; notes go to the stream', () => {
    const out = sink();
    const r = new TerminalReporter('plain', out, 15_000);
    const task = fakeTask('head (freeze-train)');
    r.on(start);
    r.on({ time: 0, type: 'note', text: 'engine wasm' });
    r.attach('head', task);
    r.on(batch(1000, 1, 1));
    r.on(batch(2000, 1, 2));
    r.on(epoch(3000, 1));
    r.on(batch(16000, 2, 1));
    r.on(batch(30000, 2, 9));
    r.on(epoch(31000, 2));
    assert.equal(out.text, 'pipe: engine wasm\n');
    assert.deepEqual(task.outputs.map((l) => l.slice(0, 16)), ['epoch 1/2 batch ', 'epoch 1/2: train', 'epoch 2/2 batch ', 'epoch 2/2: train']);
    assert.ok(task.outputs.every((l) => !l.includes('\n')));
  });

  it('json: one object per line per event, batch events at most once a second (and the last batch of an epoch)', () => {
    const out = sink();
    const events = new RunEvents();
    events.subscribe(jsonReporter(out));
    events.emit({ type: 'stage-batch', stage: 'head', epoch: 1, epochs: 1, batch: 1, batches: 3, loss: 1, images_per_second: 1 });
    events.emit({ type: 'stage-batch', stage: 'head', epoch: 1, epochs: 1, batch: 2, batches: 3, loss: 1, images_per_second: 1 });
    events.emit({ type: 'stage-batch', stage: 'head', epoch: 1, epochs: 1, batch: 3, batches: 3, loss: 1, images_per_second: 1 });
    events.emit({ type: 'stage-finish', stage: 'head', seconds: 1, reused: false });
    const parsed = out.text.trim().split('\n').map((l) => JSON.parse(l) as RunEvent);
    assert.deepEqual(parsed.map((e) => [e.type, 'batch' in e ? e.batch : undefined]), [['stage-batch', 1], ['stage-batch', 3], ['stage-finish', undefined]]);
    assert.ok(parsed.every((e) => typeof e.time === 'number'));
  });
});

describe('end-of-run lines on the training chains', () => {
  const ev = (stage: string, acc: number, loss: number, best?: number) => ({ stage, test_accuracy: acc, test_loss: loss, images: 500, ...(best !== undefined ? { best_epoch: best } : {}) });
  it('one chain, one evaluate stage: the single `test accuracy:` line (the best model is printed with the run\'s paths)', () => {
    assert.deepEqual(chainLines([{ chain: 'finetune', stages: ['head', 'finetune'], bestModel: '/r/finetune/best-model', evaluations: [ev('eval', 0.915, 0.23456, 7)] }]),
      ['test accuracy: 91.50% (loss 0.2346, 500 images, best epoch 7)']);
    assert.deepEqual(chainLines([]), []);
  });
  it('one chain, two evaluate stages: one line each, naming its stage', () => {
    assert.deepEqual(chainLines([{ chain: 'finetune', stages: ['head', 'finetune'], evaluations: [ev('eval_head', 0.5, 1), ev('eval', 0.75, 0.5, 3)] }]), [
      'test accuracy (eval_head): 50.00% (loss 1.0000, 500 images)',
      'test accuracy (eval): 75.00% (loss 0.5000, 500 images, best epoch 3)',
    ]);
  });
  it('several chains: one line per chain with its evaluations (each naming its stage) and its best model', () => {
    assert.deepEqual(chainLines([
      { chain: 'pretrain', stages: ['pretrain'], bestModel: '/r/pretrain/best-model', evaluations: [] },
      { chain: 'finetune_pre', stages: ['head_pre', 'finetune_pre'], bestModel: '/r/finetune_pre/best-model', evaluations: [ev('eval_pre', 0.915, 0.2, 9)] },
      { chain: 'finetune_scratch', stages: ['head_scratch', 'finetune_scratch'], evaluations: [ev('eval_scratch', 0.8632, 0.4, 8)] },
    ]), [
      'pretrain: best model /r/pretrain/best-model',
      'finetune_pre: test accuracy 91.50% (eval_pre: loss 0.2000, 500 images, best epoch 9), best model /r/finetune_pre/best-model',
      'finetune_scratch: test accuracy 86.32% (eval_scratch: loss 0.4000, 500 images, best epoch 8)',
    ]);
  });
});
