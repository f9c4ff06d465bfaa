/**
 * Image files to model inputs for `pipe predict`: decoded with sharp (libvips: PNG, JPEG, WebP,
 * GIF, TIFF, AVIF, SVG), channels matched to the model, resized, scaled to [0, 1] and put
 * through the test-time op chain, as the evaluate stage feeds test images.
 */
import { stat } from 'node:fs/promises';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { Chain } from '../data/chain.js';
import type { OpSpec } from '../data/transforms.js';
import { PipelineError } from '../errors.js';
import { Rng } from '../rng.js';

/** One image ready for the model. */
export interface PreparedImage {
  /** HWC float32 after the op chain, `height * width * channels` values. */
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
  /** What was done beyond the op chain (channel conversion, alpha dropped, resize), for the user. */
  notes: string[];
}

/** What the model takes. */
export interface InputSpec {
  /** [height, width] the op chain takes (the training images' size), pixels; undefined: the image's own size. */
  size?: [number, number];
  /** Channels the model takes: 1 (grey) or 3 (RGB) can be converted to; others must match. */
  channels: number;
  /** Test-time op chain (augment `with.test`). */
  ops: readonly OpSpec[];
}

function bad(file: string, why: string): PipelineError {
  return new PipelineError('PIPE_DATA', `cannot use image '${file}': ${why}`);
}

/**
 * Decodes `file` and prepares it for a model taking `spec`:
 * - channels: alpha is dropped; CMYK becomes RGB; grey -> RGB repeats the grey value, RGB -> grey is libvips'
 *   `b-w` conversion (luminance), each with a note; any other mismatch is an error;
 * - size: scaled to cover `spec.size` and centre-cropped (torchvision `Resize` + `CenterCrop`;
 *   sharp `fit: 'cover'`), with a note when the size changes; kept as is without `spec.size`;
 * - values: uint8 / 255 (torchvision `ToTensor`), then `spec.ops` in order (`Chain`, seed 0).
 * @throws Error (not a PipelineError) when the op chain does not fit the image.
 * @throws PipelineError PIPE_DATA (exit 2) naming the file when it is missing, cannot be
 *   decoded, or its channels cannot be converted.
 */
export async function prepareImage(file: string, spec: InputSpec): Promise<PreparedImage> {
  const st = await stat(file).catch(() => undefined);
  if (!st) throw bad(file, 'no such file');
  if (!st.isFile()) throw bad(file, 'not a file');
  let meta: Metadata;
  try {
    meta = await sharp(file).metadata();
  } catch (e) {
    throw bad(file, `not a readable image (${(e as Error).message})`);
  }
  const notes: string[] = [];
  const alpha = meta.hasAlpha ? 1 : 0;
  const cmyk = meta.space === 'cmyk';
  let have = (meta.channels ?? 0) - alpha;
  const want = spec.channels;
  let img = sharp(file);
  if (cmyk) {
    img = img.toColourspace('srgb');
    have = 3;
    notes.push('converted CMYK to RGB');
  }
  if (alpha) {
    img = img.removeAlpha();
    notes.push('alpha channel dropped');
  }
  if (have === want) {
    if (want === 1) img = img.toColourspace('b-w');
  } else if (want === 1 && have === 3) {
    img = img.toColourspace('b-w');
    notes.push('converted RGB to greyscale: the model takes 1 channel');
  } else if (want === 3 && have === 1) {
    img = img.toColourspace('srgb');
    notes.push('converted greyscale to RGB: the model takes 3 channels');
  } else {
    throw bad(file, `it has ${have} colour channel(s) (${meta.space ?? 'unknown colour space'}) but the model takes ${want}; convert it first`);
  }
  if (spec.size && (meta.width !== spec.size[1] || meta.height !== spec.size[0])) {
    const [h, w] = spec.size;
    img = img.resize(w, h, { fit: 'cover', position: 'centre' });
    notes.push(`resized ${meta.width}x${meta.height} to ${w}x${h} (cover, centre crop)`);
  }
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw bad(file, `not a readable image (${(e as Error).message})`);
  }
  if (raw.info.channels !== want) throw bad(file, `decoded to ${raw.info.channels} channels, expected ${want}`);
  const chain = new Chain(spec.ops, [raw.info.height, raw.info.width, want]);
  const out = new Float32Array(chain.outSize);
  chain.run(raw.data, new Rng(0), out, 0);
  const [height, width, channels] = chain.outShape;
  return { data: out, height, width, channels, notes };
}
