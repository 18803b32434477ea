import { getTableColumns, type Table } from 'drizzle-orm';
import { toSnakeCase } from 'drizzle-orm/casing';

/** Column key → its name in SQL, as drizzle spells it with `casing: 'snake_case'`. */
export function columnNames(table: Table): Map<string, string> {
  return new Map(
    Object.entries(getTableColumns(table)).map(([key, column]) => [key, column.keyAsName ? toSnakeCase(column.name) : column.name]),
  );
}

/** Every column under its TypeScript key, so that raw rows come back as drizzle's row types. */
export const selectList = (names: Map<string, string>, table?: string) =>
  [...names].map(([key, name]) => `${table ? `${table}.` : ''}"${name}" as "${key}"`).join(', ');
