/**
 * The learning-rate chart, the confusion-matrix heatmap and the misclassified-image grid, read
 * back from their SVG (marks, positions, titles) and PNG (size); text drawn by the PNG route.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';

import { MARK_NAMES, markClass } from '../../src/plot/charts.js';
import { plotConfusionMatrix } from '../../src/plot/confusion.js';
import { plotLearningRate, type LrPoint } from '../../src/plot/lr.js';
import { lrCaption } from '../../stages/plot.js';
import { plotMisclassified, type MisclassifiedTile } from '../../src/plot/misclassified.js';
import { CHART_FONT, svgToPng } from '../../src/plot/render.js';
import { darkPixels, groupContent, noTempLeft, pngSize, svgSize, translate, vertices } from './svg-helpers.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'plot-eval-test-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** A font covering CJK ideographs among the system fonts (fonts-noto-cjk, fonts-wqy-*, ...). */
function cjkFont(): string | undefined {
  const walk = (dir: string): string[] => {
    try {
      return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    } catch {
      return [];
    }
  };
  return walk('/usr/share/fonts').find((f) => /cjk|wqy|droidsansfallback|ipag|takao|nanum|arphic|uming|ukai/i.test(path.basename(f)));
}

test('learning rate: one point per epoch, one segment per phase, log scale, unfreeze rule at epoch 3', async () => {
  const lrs = [1e-3, 1e-3, 1e-4, 1e-4, 5e-5];
  const points: LrPoint[] = lrs.map((lr, i) => ({ epoch: i + 1, phase: i + 1 >= 3 ? 'unfreeze' : 'freeze', lr }));
  const dir = path.join(tmpRoot, 'lr');
  const files = await plotLearningRate(points, dir, { width: 400, height: 200 });
  assert.equal(path.basename(files.svg), 'lr-per-epoch.svg');
  noTempLeft(dir);
  const svg = fs.readFileSync(files.svg, 'utf8');

  const symbols = [...groupContent(svg, markClass(MARK_NAMES.lrPoint))!.matchAll(/<path [^>]*>/g)].map((m) => translate(m[0]));
  assert.equal(symbols.length, 5, 'one point per epoch');
  // Two segments, one per phase, not joined across the unfreeze: epochs 1-2 and 3-5.
  const segments = [...svg.matchAll(new RegExp(`class="mark-line role-mark ${MARK_NAMES.lrLine}_marks"[^>]*><path [^>]*\\sd="([^"]*)"`, 'g'))].map((m) => vertices(m[1]!));
  assert.deepEqual(segments.map((v) => v.map(([x]) => Math.round(x))).sort((a, b) => a[0]! - b[0]!), [[0, 100], [200, 300, 400]]);
  // x: epochs 1..5 over 400 px; y: log scale from 1e-3 (top) to 5e-5 (bottom)
  symbols.forEach(([x, y], i) => {
    assert.ok(Math.abs(x - (400 * i) / 4) < 0.01, `epoch ${i + 1} at x ${x}`);
    const expectedY = (200 * Math.log10(1e-3 / lrs[i]!)) / Math.log10(1e-3 / 5e-5);
    assert.ok(Math.abs(y - expectedY) < 0.01, `epoch ${i + 1}: y ${y} vs ${expectedY}`);
  });
  const rule = /<line [^>]*>/.exec(groupContent(svg, markClass(MARK_NAMES.lrUnfreezeRule))!)![0];
  assert.equal(translate(rule)[0], 200);
  assert.match(svg, />unfreeze \(epoch 3\)<\/text>/);
  assert.match(svg, /aria-label="X-axis titled 'epoch'/);
  assert.match(svg, /aria-label="Y-axis titled 'learning rate'/);
  assert.match(svg, />Learning rate per epoch<\/text>/);
  assert.deepEqual(pngSize(files.png), svgSize(svg));
});

test('confusion matrix: classes^2 cells at their row and column, counts, class names on both axes', async () => {
  const classes = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress'];
  const m = [[50, 2, 3, 0], [1, 60, 0, 4], [7, 0, 40, 1], [0, 5, 2, 45]];
  const dir = path.join(tmpRoot, 'cm');
  const files = await plotConfusionMatrix(m, classes, dir, { cell: 30, title: 'Confusion matrix (test)' });
  const svg = fs.readFileSync(files.svg, 'utf8');
  const cells = [...groupContent(svg, markClass(MARK_NAMES.confusionCell))!.matchAll(/<path aria-label="predicted: ([^;]*); true: ([^;]*); images: (\d+)"[^>]*\sd="M([\d.]+),([\d.]+)h30v30h-30Z"/g)];
  assert.equal(cells.length, classes.length ** 2);
  for (const c of cells) {
    const [p, t] = [classes.indexOf(c[1]!), classes.indexOf(c[2]!)];
    assert.equal(Number(c[3]), m[t]![p], `count of true ${c[2]} predicted ${c[1]}`);
    assert.deepEqual([Number(c[4]), Number(c[5])], [30 * p, 30 * t], 'column = predicted, row = true, in class order');
  }
  const texts = [...groupContent(svg, markClass(MARK_NAMES.confusionCount))!.matchAll(/<text [^>]*>(\d+)<\/text>/g)].map((x) => Number(x[1]));
  assert.deepEqual(texts, m.flat());
  assert.match(svg, /aria-label="X-axis titled 'predicted'/);
  assert.match(svg, /aria-label="Y-axis titled 'true'/);
  for (const c of classes) assert.equal(svg.split(`>${c}</text>`).length - 1, 2, `${c} labels a row and a column`);
  assert.deepEqual(pngSize(files.png), svgSize(svg));
  await assert.rejects(plotConfusionMatrix([[1]], classes, dir), RangeError);
});

test('misclassified grid: one embedded PNG per tile, pixels kept, labels under each', async () => {
  const tiles: MisclassifiedTile[] = Array.from({ length: 5 }, (_, i) => ({
    pixels: Uint8Array.from({ length: 28 * 28 }, (_, j) => (j * 13 + i * 50) % 256),
    height: 28, width: 28, channels: 1,
    label: `class ${i}`, predicted: `other ${i}`, probability: 0.9 - i / 10,
  }));
  const dir = path.join(tmpRoot, 'mis');
  const files = await plotMisclassified(tiles, dir, { columns: 3, imageSize: 64 });
  const svg = fs.readFileSync(files.svg, 'utf8');
  const images = [...groupContent(svg, markClass(MARK_NAMES.misclassifiedImage))!.matchAll(/<image xlink:href="data:image\/png;base64,([^"]+)"([^>]*)>/g)];
  assert.equal(images.length, 5);
  // 28 px enlarged 2x (the largest integer factor within 64), nearest neighbour: every 2nd pixel is the original
  const { data, info } = await sharp(Buffer.from(images[1]![1]!, 'base64')).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [56, 56]);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) assert.equal(data[(2 * y * 56 + 2 * x) * info.channels], tiles[1]!.pixels[y * 28 + x]);
  // three per row: tiles 0 and 3 share a column, tiles 0..2 a row
  const pos = images.map((m) => translate(m[2]!));
  assert.equal(pos[0]![0], pos[3]![0]);
  assert.ok(pos[0]![1] === pos[2]![1] && pos[3]![1]! > pos[0]![1]!);
  const trueTexts = [...groupContent(svg, markClass(MARK_NAMES.misclassifiedTrue))!.matchAll(/>([^<]+)<\/text>/g)].map((x) => x[1]);
  const predTexts = [...groupContent(svg, markClass(MARK_NAMES.misclassifiedPredicted))!.matchAll(/>([^<]+)<\/text>/g)].map((x) => x[1]);
  assert.deepEqual(trueTexts, tiles.map((t) => `true: ${t.label}`));
  assert.deepEqual(predTexts, tiles.map((t, i) => `pred: ${t.predicted} (${90 - 10 * i}%)`));
  assert.deepEqual(pngSize(files.png), svgSize(svg));
  await assert.rejects(plotMisclassified([{ ...tiles[0]!, channels: 2 }], dir), RangeError);
});

/** `text` drawn at 24 px in the chart font by the charts' own SVG -> PNG route, as raw grey pixels. */
async function drawText(text: string): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="240" height="60"><text x="10" y="40" font-family="${CHART_FONT}" font-size="24px">${text}</text></svg>`;
  return sharp(svgToPng(svg)).toColourspace('b-w').raw().toBuffer();
}

/**
 * True when `text` is drawn with real glyphs: a character no installed font has (Tangut,
 * U+17000...) is drawn as the same ".notdef" box every time, so text whose glyphs are all
 * missing gives exactly the picture of as many Tangut characters; real glyphs differ from it.
 */
async function hasGlyphs(text: string): Promise<boolean> {
  const tofu = [...text].map((_, i) => String.fromCodePoint(0x17000 + i)).join('');
  return !(await drawText(text)).equals(await drawText(tofu));
}

test('text renders in the PNG: the chart font is found, missing glyphs are detected', async () => {
  assert.ok(await darkPixels(svgToPng(`<svg xmlns="http://www.w3.org/2000/svg" width="240" height="60"><text x="10" y="40" font-family="${CHART_FONT}" font-size="24px">Sneaker</text></svg>`)) > 100);
  assert.equal(await hasGlyphs('Sneaker'), true);
  assert.equal(await hasGlyphs('\u{17100}\u{17101}'), false, 'the check itself: Tangut has no glyphs here');
});

test('non-Latin class names render where a CJK font is installed', { skip: cjkFont() === undefined && 'no CJK font under /usr/share/fonts (apt-get install fonts-noto-cjk)' }, async () => {
  assert.equal(await hasGlyphs('猫犬鳥'), true, `CJK glyphs drawn (font fallback from ${CHART_FONT})`);
  // and the heatmap carries them as text, which the same renderer draws
  const files = await plotConfusionMatrix([[1, 0], [0, 1]], ['猫', '犬'], path.join(tmpRoot, 'cjk'));
  assert.equal(fs.readFileSync(files.svg, 'utf8').split('>猫</text>').length - 1, 2);
});

test('learning-rate caption: each phase\'s first and last rate, none for one constant rate', () => {
  const e = (phase: string, lr: number): { phase: string; lr: number } => ({ phase, lr });
  assert.equal(lrCaption([e('freeze', 1e-3), e('freeze', 1e-3), e('unfreeze', 1e-4), e('unfreeze', 5e-5)]),
    'Learning rate by phase (each phase has its own optimizer; the segments are not joined): freeze: 1.0e-3; unfreeze: 1.0e-4 to 5.0e-5.');
  assert.equal(lrCaption([e('freeze', 1e-3), e('freeze', 1e-3)]), undefined);
  assert.match(lrCaption([e('freeze', 1e-3), e('freeze', 1e-4)])!, /freeze: 1\.0e-3 to 1\.0e-4\.$/);
});
