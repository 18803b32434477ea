import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCatalog } from '../../src/errors';
import { legacyCodesMarkdown } from '../../src/rest/legacy-codes';

describe('the table of legacy codes', () => {
  it('has one row per catalog entry, with its restCode, and the codes are unique', () => {
    const rows = legacyCodesMarkdown().split('\n').slice(2);
    expect(rows).toHaveLength(Object.keys(errorCatalog).length);
    for (const [name, entry] of Object.entries(errorCatalog)) {
      expect(rows.filter((row) => row.startsWith(`| ${entry.restCode} | \`${name}\` |`))).toHaveLength(1);
    }
    const codes = Object.values(errorCatalog).map((entry) => entry.restCode);
    expect(new Set(codes).size).toBe(codes.length);
    expect(errorCatalog.OK.restCode).toBe(1000);
  });

  it('is the one in the README', () => {
    const readme = fs.readFileSync(path.join(import.meta.dirname, '../../README.md'), 'utf8');
    const header = legacyCodesMarkdown().split('\n')[0]!;
    const start = readme.indexOf(header);
    expect(start, 'README.md must hold the table of legacy codes').toBeGreaterThanOrEqual(0);
    const table = readme.slice(start).split(/\n(?!\|)/)[0]!;
    expect(table.trimEnd()).toBe(legacyCodesMarkdown());
  });
});
