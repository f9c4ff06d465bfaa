/**
 * `pipe plan --format dot|mermaid` node IDs: stage names may hold `-` and be DOT or Mermaid
 * keywords (`graph`, `subgraph`, `end`). DOT IDs are the names double-quoted; Mermaid IDs are
 * s1, s2, ... by position (the name is in the label). Before, `d-a` and `d_a` both became `d_a`
 * (one node, wrong edges) and the keywords were written bare (a syntax error in either tool).
 * The expected documents are written out by hand.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { planReport } from '../../src/cli/validate.js';

describe('pipe plan graph formats: node IDs', () => {
  let tmp = '';
  let file = '';
  const saved: Record<string, string | undefined> = {};
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'pipe-plan-formats-'));
    for (const k of ['PIPE_CACHE', 'PIPE_RUNS_DIR']) saved[k] = process.env[k];
    process.env['PIPE_CACHE'] = join(tmp, 'cache');
    process.env['PIPE_RUNS_DIR'] = join(tmp, 'runs');
    file = join(tmp, 'p.yaml');
    writeFileSync(file, `name: ids
stages:
  d-a: { kind: download, with: { dataset: mnist } }
  d_a: { kind: download, with: { dataset: mnist } }
  graph: { kind: build-model, needs: [d-a], with: { arch: mini_resnet } }
  subgraph: { kind: build-model, needs: [d_a], with: { arch: mini_resnet } }
  end: { kind: build-model, needs: [d-a], with: { arch: mini_resnet } }
`);
  });
  after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  it('dot: every ID quoted, d-a and d_a distinct, graph / subgraph / end usable as names', async () => {
    assert.equal(await planReport(file, { format: 'dot' }), `digraph pipeline {
  rankdir=LR;
  "d-a" [label="d-a\\ndownload\\nrun\\ndata not cached yet"];
  "d_a" [label="d_a\\ndownload\\nrun\\ndata not cached yet"];
  "graph" [label="graph\\nbuild-model\\nrun"];
  "subgraph" [label="subgraph\\nbuild-model\\nrun"];
  "end" [label="end\\nbuild-model\\nrun"];
  "d-a" -> "graph";
  "d_a" -> "subgraph";
  "d-a" -> "end";
}
`);
  });

  it('mermaid: IDs by position (no collision, never the keyword end), names in the labels', async () => {
    assert.equal(await planReport(file, { format: 'mermaid' }), `flowchart LR
  s1["d-a (download)<br/>run<br/>data not cached yet"]
  s2["d_a (download)<br/>run<br/>data not cached yet"]
  s3["graph (build-model)<br/>run"]
  s4["subgraph (build-model)<br/>run"]
  s5["end (build-model)<br/>run"]
  s1 --> s3
  s2 --> s4
  s1 --> s5
`);
  });
});
