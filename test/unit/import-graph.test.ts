// The structure drawn from the imports (DESIGN.md "Layout"): no file of src/ imports itself back through a chain
// of imports (type-only imports included: a cycle of types is still a knot in the design), and no file of src/ is
// over 400 lines. The direction between folders is lint's job (eslint.config.js, no-restricted-imports).

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SRC = join(ROOT, 'src');
const MAX_LINES = 400;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'public' ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative specifiers of every static import/export-from and dynamic import() in `text`. */
export function importsOf(text: string): string[] {
  const withoutComments = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found: string[] = [];
  const patterns = [/\b(?:import|export)\s[^'";]*?\sfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of withoutComments.matchAll(re)) if (m[1]?.startsWith('.') === true) found.push(m[1]);
  return found;
}

/** src/-relative path → the src/-relative paths it imports. */
function importGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets = importsOf(readFileSync(file, 'utf8')).map((spec) => relative(SRC, resolve(dirname(file), spec.replace(/\.js$/, '.ts'))));
    graph.set(relative(SRC, file), targets);
  }
  return graph;
}

/** Every cycle as one strongly connected component of more than one file (or a file importing itself). */
export function cyclesOf(graph: Map<string, string[]>): string[][] {
  // Tarjan's algorithm, iterative enough for a source tree (the recursion depth is the longest import chain).
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      for (let w = stack.pop(); w !== undefined; w = w === v ? undefined : stack.pop()) {
        onStack.delete(w);
        component.push(w);
      }
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

describe('the import graph of src/', () => {
  const files = sourceFiles(SRC);
  const graph = importGraph(files);

  it('reads the imports it should (the checks below see the real graph)', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(graph.get('app.ts')).toContain('calls/manager.ts');
    expect(graph.get('providers/registry.ts')).toEqual(expect.arrayContaining(['providers/base/metrics.ts', 'providers/base/stt.ts']));
    // Every import resolves to a file of src/ (a typo or a moved file would otherwise hide a cycle).
    const missing = [...graph].flatMap(([from, to]) => to.filter((t) => !graph.has(t)).map((t) => `${from} → ${t}`));
    expect(missing).toEqual([]);
  });

  it('finds a cycle when there is one', () => {
    const knot = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts', 'd.ts']],
      ['d.ts', []],
      ['e.ts', ['e.ts']],
    ]);
    expect(cyclesOf(knot)).toEqual([['a.ts', 'b.ts', 'c.ts'], ['e.ts']]);
    expect(importsOf("import type { X } from './x.js';\nexport { y } from '../y.js';\nconst z = await import('./z.js');\n// import './no.js';")).toEqual([
      './x.js',
      '../y.js',
      './z.js',
    ]);
  });

  it('has no import cycle', () => {
    expect(cyclesOf(graph)).toEqual([]);
  });

  it(`has no file over ${MAX_LINES} lines`, () => {
    const long = files
      .map((f) => ({ file: relative(ROOT, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > MAX_LINES);
    expect(long).toEqual([]);
  });
});
