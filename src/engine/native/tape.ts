/**
 * Keeps tfjs's gradient tape from zero-filling the outputs of a multi-output kernel that are not
 * differentiated.
 *
 * When tfjs back-propagates through a kernel with several outputs, every output that received no
 * gradient gets one made of zeros, in JavaScript (`makeZerosTypedArray`, then a copy into the
 * backend: tfjs-core engine.ts, `addTapeNode`, "To optimize back-prop, pass dys that are not used
 * in the backprop graph to the user as null instead of zeros"). For `PipeConvBnTrain` that is
 * the saved pre-BatchNorm activation z, as large as the layer's output: measured on
 * cifar_resnet18 (batch 64, 32x32, native route), 0.3 s of a 1.2 s training step went into those
 * zeros (`node --cpu-prof`: `BackendWasm.move` under `tapeNode.gradient`). The kernels' gradient
 * functions read only the first output's gradient, so the tape node is told that the kernel has
 * that one output: the others then take no part in back-propagation (they are not on any path
 * to the loss: the statistics feed the running averages, z feeds only the gradient).
 *
 * Relies on tfjs-core 4.22's engine internals (`engine().state.activeTape`, the tape node's
 * `outputs`); package.json pins @tensorflow/* exactly.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-core's TapeNode (tape.ts) read or written here. */
interface TapeNodeLike {
  kernelName: string;
  outputs: tf.Tensor[];
}

/**
 * Marks the kernel call that returned `outputs` (the tape's last node, when the tape is recording
 * and that node's outputs are these tensors) as differentiable through `outputs[0]` only.
 * A no-op when nothing is being recorded.
 */
export function differentiateFirstOutputOnly(outputs: tf.Tensor[]): void {
  const tape = (tf.engine().state as unknown as { activeTape?: TapeNodeLike[] }).activeTape;
  const node = tape?.[tape.length - 1];
  if (!node || node.outputs.length !== outputs.length || !node.outputs.every((t, i) => t === outputs[i])) return;
  node.outputs = [outputs[0]!];
}
