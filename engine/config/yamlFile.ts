import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { ConfigError, type ConfigProblem } from './errors.js';

/** A parsed YAML file that can tell the line of any value by its path. */
export interface YamlFile {
  file: string;
  /** The plain JS value of the document. */
  value: unknown;
  /** 1-based line of the value at `path` (or of its closest existing parent). */
  lineOf(path: ReadonlyArray<string | number>): number;
  /** A problem located at `path`. */
  problem(path: ReadonlyArray<string | number>, message: string): ConfigProblem;
}

/** Reads and parses a YAML file; syntax errors become a ConfigError with file:line. */
export function readYamlFile(file: string): YamlFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ file, line: 0, message: `cannot read file (${(e as Error).message})` }], {
      cause: e,
    });
  }
  return parseYaml(text, file);
}

/** Parses YAML text; `file` names it in errors. */
export function parseYaml(text: string, file: string): YamlFile {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        file,
        line: e.linePos?.[0]?.line ?? lineCounter.linePos(e.pos[0]).line,
        message: e.message.split('\n')[0] ?? e.message,
      })),
    );
  }
  const lineOf = (path: ReadonlyArray<string | number>): number => {
    let node: unknown = doc.contents;
    let line = node && (node as Node).range ? lineCounter.linePos((node as Node).range![0]).line : 1;
    for (const key of path) {
      let next: unknown;
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
        if (pair && isScalar(pair.key) && pair.key.range) line = lineCounter.linePos(pair.key.range[0]).line;
        next = pair?.value;
      } else if (isSeq(node) && (typeof key === 'number' || /^\d+$/.test(key))) {
        // schema errors name items by their index as a string (`privacy/maskFields/2`)
        next = node.items[Number(key)];
      }
      if (!next) break;
      node = next;
      const range = (node as Node).range;
      if (range && !isMap(node)) line = lineCounter.linePos(range[0]).line;
      else if (range && isMap(node) && typeof key === 'number') line = lineCounter.linePos(range[0]).line;
    }
    return line;
  };
  return {
    file,
    value: doc.toJS(),
    lineOf,
    problem: (path, message) => ({ file, line: lineOf(path), message }),
  };
}

/**
 * Reads several YAML files for a loader that reports every problem at once: files that cannot be
 * read or parsed add their problems to `problems` and are left out of the result.
 */
export function readYamlFiles(files: readonly string[], problems: ConfigProblem[]): YamlFile[] {
  const out: YamlFile[] = [];
  for (const file of files) {
    try {
      out.push(readYamlFile(file));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems);
    }
  }
  return out;
}
