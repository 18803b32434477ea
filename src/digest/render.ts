/**
 * Alert-storm digests, rendered once per markup family (not once per channel): robot markdown (DingTalk, WeCom, and
 * Feishu's card markdown element) and plain text. A channel picks its family and turns the rendered digest into its own
 * message (see `ChannelDigest` in channels/channel.ts).
 */

export const markupFamilies = ['robot-markdown', 'text'] as const;
export type MarkupFamily = (typeof markupFamilies)[number];

/** Who a message @mentions. A digest carries the union of its messages' mentions. */
export interface Mentions {
  userIds: string[];
  mobiles: string[];
  all: boolean;
}

export const noMentions = (): Mentions => ({ userIds: [], mobiles: [], all: false });

/** One folded message: its time (when it was handed to the gateway) and its text, verbatim. */
export interface DigestEntry {
  at: number;
  title?: string;
  text: string;
  /** A link the message pointed to (DingTalk link and action card messages). */
  url?: string;
  mentions: Mentions;
}

export interface RenderedDigest {
  /** A short title (markdown messages need one; shown in the chat list). */
  title: string;
  /** The body in the family's markup: markdown or plain text. */
  content: string;
  mentions: Mentions;
  count: number;
}

/** `HH:MM:SS` in UTC: each entry's time; the day is in the title. */
const clock = (at: number) => new Date(at).toISOString().slice(11, 19);
const day = (at: number) => new Date(at).toISOString().slice(0, 10);

export function digestTitle(entries: readonly DigestEntry[]): string {
  const first = entries[0]!.at;
  const last = entries[entries.length - 1]!.at;
  return `Digest: ${entries.length} messages, ${day(first)} ${clock(first)}–${clock(last)} UTC`;
}

export function unionOfMentions(entries: readonly DigestEntry[]): Mentions {
  const userIds = new Set<string>();
  const mobiles = new Set<string>();
  let all = false;
  for (const { mentions } of entries) {
    for (const id of mentions.userIds) userIds.add(id);
    for (const mobile of mentions.mobiles) mobiles.add(mobile);
    all ||= mentions.all;
  }
  return { userIds: [...userIds], mobiles: [...mobiles], all };
}

const renderers: Record<MarkupFamily, (entries: readonly DigestEntry[], title: string) => string> = {
  'robot-markdown': (entries, title) =>
    [
      `#### ${title}`,
      ...entries.map((entry) => {
        const head = entry.title ? `**${clock(entry.at)}** **${entry.title}**` : `**${clock(entry.at)}**`;
        const link = entry.url ? `\n[${entry.url}](${entry.url})` : '';
        return `${head}\n${entry.text}${link}`;
      }),
    ].join('\n\n'),
  text: (entries, title) =>
    [
      title,
      ...entries.map((entry) => {
        const head = entry.title ? `[${clock(entry.at)}] ${entry.title}` : `[${clock(entry.at)}]`;
        return `${head}\n${entry.text}${entry.url ? `\n${entry.url}` : ''}`;
      }),
    ].join('\n\n'),
};

/** The digest of `entries` (oldest first) in one family's markup; every entry's text verbatim, nothing cut. */
export function renderDigest(family: MarkupFamily, entries: readonly DigestEntry[]): RenderedDigest {
  if (entries.length === 0) throw new Error('a digest folds at least one message');
  const title = digestTitle(entries);
  return { title, content: renderers[family](entries, title), mentions: unionOfMentions(entries), count: entries.length };
}
