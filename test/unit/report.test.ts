/**
 * report.html: self-contained (no scripts, no external URLs, charts as SVG data URIs that
 * decode to the given SVG), the evaluation table holds the split's numbers, every text is
 * escaped, and the resolved config reads back as the same object.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import type { Logits } from '../../src/eval/metrics.js';
import { splitReport } from '../../src/eval/split-report.js';
import { escapeHtml, renderReportHtml, type ReportEpoch } from '../../src/report/html.js';

const unescape = (s: string): string => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

// 4 images, 2 classes: labels 0 0 1 1, predictions 0 1 1 1 (one mistake, label 0 -> 1)
const LOGITS: Logits = { values: Float32Array.from([2, 0, 0, 1, 0, 3, 0, 2]), n: 4, classes: 2 };
const CLASSES = ['<b>cat</b>', 'dog & co'];
const SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>#1 "chart" é</text></svg>';
const CONFIG = { name: 'p<script>alert(1)</script>', seed: 3, stages: { e: { kind: 'evaluate', needs: ['t'], with: { batch_size: 8 } } } };
const HISTORY: ReportEpoch[] = [1, 2, 3].map((epoch) => ({
  epoch, phase: epoch < 3 ? 'freeze' : 'unfreeze', train_loss: 1 / epoch, train_accuracy: 0.5, test_loss: 1.2 / epoch, test_accuracy: 0.4 + epoch / 10, lr: 0.001, epoch_seconds: 2,
}));

function page(): string {
  const test = splitReport('test', LOGITS, Int32Array.from([0, 0, 1, 1]), CLASSES, { topK: 1, ms: 100 });
  return renderReportHtml({
    title: CONFIG.name, description: 'a <desc>', generated: new Date('2025-01-02T03:04:05Z'),
    facts: [['run folder', '/runs/x']], figures: [{ title: 'Loss & co', svg: SVG }],
    evaluation: { best_epoch: 3, best_phase: 'unfreeze', unfreeze_epoch: 3, splits: { test } },
    history: HISTORY, config: CONFIG,
  });
}

/** Cells of every row of the table that follows `heading`. */
function tableAfter(html: string, heading: string): string[][] {
  const at = html.indexOf(heading);
  assert.ok(at >= 0, `heading ${heading}`);
  const body = /<tbody>(.*?)<\/tbody>/s.exec(html.slice(at))![1]!;
  return [...body.matchAll(/<tr>(.*?)<\/tr>/g)].map((r) => [...r[1]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => unescape(c[1]!)));
}

test('report.html is one self-contained page', () => {
  const html = page();
  assert.match(html, /^<!doctype html>\n<html lang="en"><head><meta charset="utf-8">/);
  assert.doesNotMatch(html, /<script/i, 'no scripts (the config text is escaped)');
  assert.doesNotMatch(html, /<link|@import|url\(|(src|href)="(?!data:)/i, 'nothing loaded from elsewhere');
  const imgs = [...html.matchAll(/<img alt="([^"]*)" src="data:image\/svg\+xml;base64,([^"]+)">/g)];
  assert.equal(imgs.length, 1);
  assert.equal(unescape(imgs[0]![1]!), 'Loss & co');
  assert.equal(Buffer.from(imgs[0]![2]!, 'base64').toString('utf8'), SVG);
  assert.match(html, /<title>p&lt;script&gt;alert\(1\)&lt;\/script&gt;: pipe report<\/title>/);
  assert.match(html, /<p>a &lt;desc&gt;<\/p>/);
  assert.match(html, /<dt>generated<\/dt><dd>2025-01-02T03:04:05.000Z<\/dd>/);
  assert.match(html, /<dt>best epoch<\/dt><dd>3 \(unfreeze\)<\/dd>/);
});

test('evaluation tables hold the split numbers; history has one row per epoch', () => {
  const html = page();
  // accuracy 3/4; precision cat 1/1, dog 2/3; recall cat 1/2, dog 2/2
  assert.match(html, /test accuracy<b>75\.00%<\/b>/);
  const overall = tableAfter(html, 'Evaluation: test split');
  assert.deepEqual(overall.find((r) => r[0] === 'top-1 accuracy'), ['top-1 accuracy', '75.00%']);
  assert.deepEqual(overall.find((r) => r[0] === 'misclassified images'), ['misclassified images', '1']);
  assert.deepEqual(overall.find((r) => r[0] === 'images'), ['images', '4']);
  const perClass = tableAfter(html, '<h3>Per class</h3>');
  const f1 = (p: number, r: number) => ((2 * p * r) / (p + r)).toFixed(4);
  assert.deepEqual(perClass, [
    ['<b>cat</b>', (1).toFixed(4), (0.5).toFixed(4), f1(1, 0.5), '50.00%', '2'],
    ['dog & co', (2 / 3).toFixed(4), (1).toFixed(4), f1(2 / 3, 1), '100.00%', '2'],
  ]);
  assert.ok(html.includes('<td>&lt;b&gt;cat&lt;/b&gt;</td>'), 'class names escaped');
  const history = tableAfter(html, 'Training history');
  assert.deepEqual(history.map((r) => [r[0], r[1]]), [['1', 'freeze'], ['2', 'freeze'], ['3', 'unfreeze']]);
});

test('the resolved config reads back as the same object', () => {
  const pre = /<section id="config"><h2>Resolved config<\/h2><pre>(.*?)<\/pre>/s.exec(page());
  assert.ok(pre);
  assert.deepEqual(parse(unescape(pre[1]!)), CONFIG);
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('without an evaluation: charts, history and config only', () => {
  const html = renderReportHtml({ title: 't', generated: new Date(0), figures: [], config: { a: 1 } });
  assert.doesNotMatch(html, /Evaluation:|Training history|<img|class="headline"/);
  assert.match(html, /<pre>a: 1\n<\/pre>/);
});

test('captions only where given: a figure without one has no figcaption (the title is in the chart)', () => {
  const html = renderReportHtml({
    title: 't', generated: new Date(0), config: {},
    figures: [{ title: 'A', svg: '<svg xmlns="http://www.w3.org/2000/svg"/>' }, { title: 'B', svg: '<svg xmlns="http://www.w3.org/2000/svg"/>', caption: 'best at epoch 2 & more' }],
  });
  assert.deepEqual([...html.matchAll(/<figcaption>([^<]*)<\/figcaption>/g)].map((m) => m[1]), ['best at epoch 2 &amp; more']);
  assert.equal([...html.matchAll(/<figure>/g)].length, 2);
});
