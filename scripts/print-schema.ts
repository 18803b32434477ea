import fs from 'node:fs';
import { printSchema } from 'graphql';
import { schema } from '../src/graphql/schema';

fs.writeFileSync(new URL('../schema.graphql', import.meta.url), `${printSchema(schema)}\n`);
console.log('schema.graphql written');
