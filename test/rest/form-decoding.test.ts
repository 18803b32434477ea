import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeForm, MalformedParameterError } from '../../src/rest/form-decoding';

describe('decodeForm (servlet form rules, strict)', () => {
  it('decodes + as a space and %XX as UTF-8 bytes', () => {
    expect(decodeForm('a=x+y%2Bz&b=%E4%B8%AD%F0%9F%98%80&c=%26%3D%25%0A', 'query string')).toEqual([
      ['a', 'x y+z'],
      ['b', '中😀'],
      ['c', '&=%\n'],
    ]);
  });

  it('keeps empty values, bare names, repeated names in order, and skips empty pairs', () => {
    expect(decodeForm('a=&b&&a=2&=v', 'query string')).toEqual([
      ['a', ''],
      ['b', ''],
      ['a', '2'],
      ['', 'v'],
    ]);
  });

  it('splits a value at its first = only', () => {
    expect(decodeForm('k=a=b=c', 'query string')).toEqual([['k', 'a=b=c']]);
  });

  it('round-trips any text encoded by URLSearchParams or encodeURIComponent', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }), (name, value) => {
        const form = new URLSearchParams([[name, value]]).toString();
        expect(decodeForm(form, 'query string')).toEqual([[name, value]]);
        expect(decodeForm(`x=${encodeURIComponent(value)}`, 'query string')).toEqual([['x', value]]);
      }),
    );
  });

  it.each([
    ['%ZZ', 'content=%ZZ', 'content', 'malformed percent-encoding "%ZZ" in the query string; a literal % is sent as %25'],
    ['a bare %', 'content=5%', 'content', 'malformed percent-encoding "%" in the query string; a literal % is sent as %25'],
    ['%E4%B8 (truncated UTF-8)', 'content=%E4%B8', 'content', 'is not valid UTF-8 once percent-decoded (in the query string)'],
    ['an overlong encoding (%C0%AF)', 'content=%C0%AF', 'content', 'is not valid UTF-8 once percent-decoded (in the query string)'],
    ['a lone surrogate (%ED%A0%80)', 'content=%ED%A0%80', 'content', 'is not valid UTF-8 once percent-decoded (in the query string)'],
    ['a bad name', '%G1=x', 'query string', 'malformed percent-encoding "%G1" in a parameter name; a literal % is sent as %25'],
  ])('refuses %s, naming the parameter', (_label, input, parameter, message) => {
    let error: unknown;
    try {
      decodeForm(input, 'query string');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MalformedParameterError);
    expect(error).toMatchObject({ parameter, message });
  });

  it('decodes bytes in another charset (GBK form bodies)', () => {
    expect(decodeForm(Buffer.from('content=%D6%D0%CE%C4', 'latin1'), 'form body', 'gbk')).toEqual([['content', '中文']]);
  });

  it('takes raw UTF-8 bytes in a body as they are', () => {
    expect(decodeForm(Buffer.from('content=中文+x', 'utf8'), 'form body')).toEqual([['content', '中文 x']]);
  });
});

describe('decodeForm on text and on its bytes', () => {
  const outcome = (input: string | Uint8Array) => {
    try {
      return decodeForm(input, 'query string');
    } catch (error) {
      return error instanceof MalformedParameterError ? { parameter: error.parameter, message: error.message } : error;
    }
  };
  const piece = fc.oneof(
    fc.constantFrom('%', '+', '=', '&', '%2', '%2B', '%25', '%E4', '%B8%AD', '%C0%AF', '%ED%A0%80', '%F0%9F%98%80', '%ZZ', '%ef%bb%bf', '%00'),
    fc.string({ unit: 'grapheme', maxLength: 4 }),
  );

  it('gives the same pairs, or the same refusal, for any text (the text is decoded without its bytes)', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const text = pieces.join('');
        expect(outcome(text)).toEqual(outcome(Buffer.from(text, 'utf8')));
      }),
      { numRuns: 2000 },
    );
  });
});
