import fs from 'node:fs';
import { printSchema } from 'graphql';
import { schema } from '../src/graphql/schema';
import { legacyOpenApiDocument } from '../src/rest/openapi';

fs.writeFileSync(new URL('../schema.graphql', import.meta.url), `${printSchema(schema)}\n`);
fs.writeFileSync(new URL('../openapi.json', import.meta.url), `${JSON.stringify(legacyOpenApiDocument(), null, 2)}\n`);
console.log('schema.graphql and openapi.json written');
