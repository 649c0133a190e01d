import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { getProvider } from '@tibet/core';
import { leafHash, lineHash, splitLines } from '@tibet/continuityd';
import { loadLog } from '../src/log-read.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * A segment of ~5.3 MB (read in several pieces: 1 MB, 4 MB, the rest): lines of many lengths,
 * so that lines straddle every piece boundary, among them non-ASCII lines (in the first piece
 * and in later ones), a line with a byte order mark, a line that is not UTF-8, an empty line,
 * and a torn last line without its newline.
 */
function segmentBytes(): Uint8Array {
  const parts: Buffer[] = [];
  for (let i = 0; i < 3600; i++) {
    let text = `{"line":${i},"pad":"${'x'.repeat((i * 7919) % 2900)}"}`;
    if (i % 997 === 5) text = `{"line":${i},"name":"Zoë \u2014 \u{1f511}"}`;
    if (i === 2000) text = `\ufeff{"line":${i}}`;
    if (i === 2500) text = '';
    parts.push(Buffer.from(text + '\n', 'utf8'));
    if (i === 3000) parts.push(Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a])); // not UTF-8
  }
  parts.push(Buffer.from('{"torn":tru', 'utf8'));
  return new Uint8Array(Buffer.concat(parts));
}

describe('loadLog', () => {
  it('reads a segment in pieces exactly as one buffer split into lines: bytes, text, hashes, problems', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cbom-read-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'segments'));
    const bytes = segmentBytes();
    expect(bytes.length).toBeGreaterThan((1 << 20) + (1 << 22));
    writeFileSync(join(dir, 'segments', `${'0'.repeat(16)}.jsonl`), bytes);
    const p = getProvider();
    const counts: number[] = [];
    const log = await loadLog(dir, p, { lines: (n) => counts.push(n) });

    const want = splitLines(bytes).lines;
    expect(log.lines.length).toBe(want.length);
    expect(want.length).toBe(3601);
    const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // core's fromUtf8
    for (let i = 0; i < want.length; i++) {
      const l = log.lines[i]!;
      const w = want[i]!;
      expect(l.position).toBe(i);
      expect(Buffer.from(l.bytes).equals(Buffer.from(w))).toBe(true);
      let text = '';
      try {
        text = strict.decode(w);
      } catch {
        text = '';
      }
      expect(l.text).toBe(text);
      expect(l.exact).toBe(!(w[0] === 0xef && w[1] === 0xbb && w[2] === 0xbf));
      expect(l.hash).toBe(lineHash(w, p));
      expect(Buffer.from(l.leaf).equals(Buffer.from(leafHash(w, p)))).toBe(true);
      expect(l.record).toBeUndefined();
    }
    expect(log.lines[2000]!.exact).toBe(false);
    expect(log.lines[3001]!.text).toBe('');
    // every line is reported, in order; nothing of the torn tail
    const malformed = log.problems.filter((x) => x.code === 'LOG_LINE_MALFORMED');
    expect(malformed.map((x) => Number(/^line (\d+) /.exec(x.detail)![1]))).toEqual(
      want.map((_, i) => i),
    );
    expect(log.problems.map((x) => x.code)).toContain('LOG_KEY_MISSING');
    // the line count is reported as each piece is taken: growing, up to every line
    expect(counts.length).toBeGreaterThan(2);
    for (let i = 1; i < counts.length; i++) expect(counts[i]!).toBeGreaterThan(counts[i - 1]!);
    expect(counts[counts.length - 1]).toBe(want.length);
    // a non-ASCII piece: no joined text (the lines block is joined line by line)
    expect(log.joinedText).toBeUndefined();
  });

  it('gives the text of an ASCII log (several segments, several pieces) as its lines joined', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cbom-read-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'segments'));
    const ascii = (from: number, n: number, torn: string): Buffer => {
      const parts: string[] = [];
      for (let i = from; i < from + n; i++)
        parts.push(`{"line":${i},"pad":"${'y'.repeat((i * 613) % 3100)}"}\n`);
      return Buffer.from(parts.join('') + torn, 'latin1');
    };
    const first = ascii(0, 3500, '');
    expect(first.length).toBeGreaterThan((1 << 20) + (1 << 22));
    writeFileSync(join(dir, 'segments', `${'0'.repeat(16)}.jsonl`), first);
    writeFileSync(
      join(dir, 'segments', `${String(3500).padStart(16, '0')}.jsonl`),
      ascii(3500, 5, '{"to'),
    );
    const log = await loadLog(dir, getProvider());
    expect(log.lines).toHaveLength(3505);
    const joined = log.lines.map((l) => l.text).join('\n');
    expect(log.joinedText).toBe(joined);
    expect(log.joinedText!.endsWith('"}')).toBe(true);
    // an empty log: the empty text
    const empty = mkdtempSync(join(tmpdir(), 'cbom-read-'));
    dirs.push(empty);
    mkdirSync(join(empty, 'segments'));
    writeFileSync(join(empty, 'segments', `${'0'.repeat(16)}.jsonl`), '');
    expect((await loadLog(empty, getProvider())).joinedText).toBe('');
  });
});
