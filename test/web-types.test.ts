import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatedFile, generateWebTypes } from '../scripts/generate-web-types';

describe('web/src/graphql/generated.ts', () => {
  it('is what schema.graphql and the console operations generate (run `npm run web:types` and commit it when this fails)', async () => {
    const onDisk = fs.existsSync(generatedFile) ? fs.readFileSync(generatedFile, 'utf8') : '';
    expect(onDisk, 'generated.ts is stale: run `npm run web:types` and commit web/src/graphql/generated.ts').toBe(await generateWebTypes());
  });
});
