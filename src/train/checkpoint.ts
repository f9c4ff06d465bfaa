/**
 * Per-epoch checkpoints of a training phase: every weight (BN statistics included), the
 * optimizer's slots (Adam moments and step count), the scheduler, early-stopping and best-model
 * state, the counters and the phase history. Batches depend only on (seed, epoch), so the data
 * order needs no RNG state beyond the epoch counter.
 *
 * Layout: <dir>/epoch-<N>/{weights.bin, manifest.json, state.json} written in full and fsynced,
 * then <dir>/latest.json (atomic rename, fsynced) points at it, then older epochs are removed; a
 * crash or power loss at any point leaves the previous checkpoint usable. state.json holds the
 * phase's per-iteration losses and epoch records: the checkpoint is also the durable record of
 * what the tracker must receive for those epochs (see trainPhase's onCommit).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDurable } from '../fs-durable.js';
import type { EpochRecord } from './loop.js';
import type { NamedTensor } from './optimizer.js';

/** The JSON part of a checkpoint. */
export interface CheckpointState {
  /** Identifies the configuration (stage params); a checkpoint of another one is ignored. */
  fingerprint: string;
  /** Epochs of this phase already done. */
  phaseEpochsDone: number;
  /** Global epoch and step after the last finished epoch. */
  epoch: number;
  step: number;
  /** Base learning rate for the next epoch (after ReduceLROnPlateau): LearningRate.base. */
  baseLr: number;
  plateau?: { best: number; numBadEpochs: number; cooldownCounter: number };
  early?: { best: number; wait: number };
  best: { value?: number; epoch?: number; phase?: 'freeze' | 'unfreeze' };
  epochs: EpochRecord[];
  iterationLosses: number[];
  stoppedEarly: boolean;
}

/** Tensors of a checkpoint, by group. */
export interface CheckpointTensors {
  /** Every classifier weight, in allWeights() order. */
  model: tf.Tensor[];
  /** Optimizer slots as the optimizer names them. */
  optimizer: NamedTensor[];
  /** The best epoch's weights (empty before the first epoch). */
  best: tf.Tensor[];
}

/** Writes the checkpoint of `state.epoch` and makes it the latest. */
export async function writeCheckpoint(dir: string, state: CheckpointState, t: CheckpointTensors): Promise<void> {
  const sub = `epoch-${state.epoch}`;
  const target = join(dir, sub);
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  const named: NamedTensor[] = [
    ...t.model.map((tensor, i) => ({ name: `model/${i}`, tensor })),
    ...t.optimizer.map((o) => ({ name: `optimizer/${o.name}`, tensor: o.tensor })),
    ...t.best.map((tensor, i) => ({ name: `best/${i}`, tensor })),
  ];
  const { data, specs } = await tf.io.encodeWeights(named);
  try {
    await writeDurable(join(target, 'weights.bin'), Buffer.from(data as ArrayBuffer));
    await writeDurable(join(target, 'manifest.json'), JSON.stringify({ specs, optimizerNames: t.optimizer.map((o) => o.name) }));
    await writeDurable(join(target, 'state.json'), JSON.stringify(state));
  } catch (e) {
    await rm(target, { recursive: true, force: true }); // a full disk: give back what this epoch took
    throw e;
  }
  await writeDurable(join(dir, 'latest.json'), JSON.stringify({ epoch: state.epoch, dir: sub }));
  for (const old of await readdir(dir)) if (/^epoch-\d+$/.test(old) && old !== sub) await rm(join(dir, old), { recursive: true, force: true });
}

/** Reads the latest checkpoint, or undefined when there is none. Caller disposes the tensors. */
export async function readCheckpoint(dir: string): Promise<{ state: CheckpointState; tensors: CheckpointTensors } | undefined> {
  if (!existsSync(join(dir, 'latest.json'))) return undefined;
  const { dir: sub } = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')) as { dir: string };
  const target = join(dir, sub);
  const state = JSON.parse(await readFile(join(target, 'state.json'), 'utf8')) as CheckpointState;
  const manifest = JSON.parse(await readFile(join(target, 'manifest.json'), 'utf8')) as { specs: tf.io.WeightsManifestEntry[]; optimizerNames: string[] };
  const bin = await readFile(join(target, 'weights.bin'));
  const map = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest.specs);
  const group = (prefix: string): tf.Tensor[] =>
    Object.keys(map).filter((k) => k.startsWith(`${prefix}/`)).sort((a, b) => Number(a.split('/')[1]) - Number(b.split('/')[1])).map((k) => map[k]!);
  return {
    state,
    tensors: {
      model: group('model'),
      best: group('best'),
      optimizer: manifest.optimizerNames.map((name) => ({ name, tensor: map[`optimizer/${name}`]! })),
    },
  };
}
