import { getOperationAST, Kind, type DocumentNode, type SelectionSetNode } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { GraphQLTransport } from '../graphql/yoga';
import type { GatewayMetrics } from './metrics';

function rootFields(selectionSet: SelectionSetNode, into: Set<string>, document: DocumentNode, depth = 0): void {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) into.add(selection.name.value);
    else if (depth < 5 && selection.kind === Kind.INLINE_FRAGMENT) rootFields(selection.selectionSet, into, document, depth + 1);
    else if (depth < 5 && selection.kind === Kind.FRAGMENT_SPREAD) {
      const fragment = document.definitions.find(
        (definition) => definition.kind === Kind.FRAGMENT_DEFINITION && definition.name.value === selection.name.value,
      );
      if (fragment?.kind === Kind.FRAGMENT_DEFINITION) rootFields(fragment.selectionSet, into, document, depth + 1);
    }
  }
}

/**
 * Labels for an operation. The operation name is chosen by the client (unbounded), so the label is the root field,
 * which the schema bounds; several root fields in one operation count as `(multiple)`.
 */
export function describeOperation(document: DocumentNode, operationName?: string | null): OperationLabels {
  // Yoga's parser cache hands back the same document for the same query text: described once per document and name.
  let byName = described.get(document);
  if (!byName) described.set(document, (byName = new Map()));
  const key = operationName ?? '';
  let labels = byName.get(key);
  if (!labels) {
    labels = labelsOf(document, operationName);
    if (byName.size < 16) byName.set(key, labels);
  }
  return labels;
}

interface OperationLabels {
  type: string;
  field: string;
}

const described = new WeakMap<DocumentNode, Map<string, OperationLabels>>();

function labelsOf(document: DocumentNode, operationName?: string | null): OperationLabels {
  const operation = getOperationAST(document, operationName ?? undefined);
  if (!operation) return { type: 'unknown', field: '(unknown)' };
  const fields = new Set<string>();
  rootFields(operation.selectionSet, fields, document);
  const field = fields.size === 1 ? [...fields][0] : fields.size === 0 ? '(none)' : '(multiple)';
  return { type: operation.operation, field };
}

const hasErrors = (result: unknown) =>
  Array.isArray((result as { errors?: unknown[] } | undefined)?.errors) && (result as { errors: unknown[] }).errors.length > 0;

/** Which transport an operation came over: WebSocket operations say so; over HTTP, an event stream is SSE. */
function transportOf(context: { transport?: GraphQLTransport; request?: Request }): GraphQLTransport {
  if (context.transport) return context.transport;
  return context.request?.headers.get('accept')?.includes('text/event-stream') ? 'sse' : 'http';
}

/** Counts and times executed operations, and tells the request log line which operation it was. */
export function useOperationMetrics(metrics: GatewayMetrics): Plugin<any> {
  return {
    onExecute({ args }) {
      if (args.contextValue.warmUp) return;
      const transport = transportOf(args.contextValue);
      const { type, field } = describeOperation(args.document, args.operationName);
      const note = args.contextValue.requestNote;
      if (note) note.operation = `${type} ${field}`;
      const started = performance.now();
      return {
        onExecuteDone({ result }) {
          const outcome = !isAsyncIterable(result) && hasErrors(result) ? 'error' : 'success';
          metrics.graphqlOperation(transport, type, field, outcome, (performance.now() - started) / 1000);
        },
      };
    },
    onSubscribe({ args }) {
      const transport = transportOf(args.contextValue);
      const { type, field } = describeOperation(args.document, args.operationName);
      const note = args.contextValue.requestNote;
      if (note) note.operation = `${type} ${field}`;
      return {
        // A subscription lives as long as its client: counted when it starts, not timed.
        onSubscribeResult({ result }) {
          metrics.graphqlOperation(transport, type, field, isAsyncIterable(result) || !hasErrors(result) ? 'success' : 'error');
        },
        onSubscribeError() {
          metrics.graphqlOperation(transport, type, field, 'error');
        },
      };
    },
  };
}
