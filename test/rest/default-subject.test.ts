import { describe, expect, it } from 'vitest';
import { defaultSubject } from '../../src/rest/legacy-routes';

describe('defaultSubject (the first non-blank line of the content, cut to 60 characters)', () => {
  it('skips blank lines whatever their line breaks, and trims the line', () => {
    expect(defaultSubject(undefined)).toBe('');
    expect(defaultSubject(' \n\t\r\n\r  disk full \nsecond')).toBe('disk full');
    expect(defaultSubject('\u00a0\u2028\r\n x')).toBe('x');
  });

  it('keeps U+2028 inside a line (only CR and LF end one)', () => {
    expect(defaultSubject('a\u2028b\nc')).toBe('a\u2028b');
  });

  it('counts characters, not UTF-16 units', () => {
    expect(defaultSubject('😀'.repeat(60))).toBe('😀'.repeat(60));
    expect(defaultSubject('😀'.repeat(61))).toBe(`${'😀'.repeat(59)}…`);
    expect(defaultSubject('x'.repeat(61))).toBe(`${'x'.repeat(59)}…`);
  });
});
