import { lexicographicSortSchema } from 'graphql';
import { builder } from './builder';
import './index';

builder.queryType({});
builder.mutationType({});

export const schema = lexicographicSortSchema(builder.toSchema());
