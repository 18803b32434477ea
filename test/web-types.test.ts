import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codegenTargets, generate, outputFile } from '../scripts/codegen';

describe('generated typed documents', () => {
  it.each(codegenTargets.map((target) => [target.output, target]))(
    '%s is what schema.graphql and its operations generate (run `npm run codegen` and commit it when this fails)',
    async (output, target) => {
      const file = outputFile(target);
      const onDisk = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      expect(onDisk, `${output} is stale: run \`npm run codegen\` and commit it`).toBe(await generate(target));
    },
  );
});
