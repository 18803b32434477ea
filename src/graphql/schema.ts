import { lexicographicSortSchema } from 'graphql';
import { builder } from './builder';
import './index';

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export const schema = lexicographicSortSchema(builder.toSchema());
