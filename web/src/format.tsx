import { useI18n, type Lang } from './i18n';

const pad = (value: number) => String(value).padStart(2, '0');

/**
 * "2026-12-01 21:51:36" in the browser's zone, in both languages: en-GB's 01/12/2026 reads as 12 January to a US
 * reader, and the year-first order is what zh-CN readers expect anyway.
 */
export function localTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** An axis label for a chart: the time of day, with the date where the day changes ("12-01 00:00"). */
export function axisTime(seconds: number, withDate: boolean): string {
  const date = new Date(seconds * 1000);
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return withDate ? `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}` : time;
}

/** A time in the browser's zone, the ISO instant in `datetime` and as a tooltip. */
export function Time({ iso }: { iso: string | null | undefined }) {
  const { t } = useI18n();
  if (!iso) return <span>{t('delivery.none')}</span>;
  return (
    <time dateTime={iso} title={iso}>
      {localTime(iso)}
    </time>
  );
}

/** "3 min", "2 h 5 min", "45 s": an age in seconds, short. */
export function shortAge(seconds: number, lang: Lang): string {
  const zh = lang === 'zh-CN';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return zh ? `${s} 秒` : `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return zh ? `${minutes} 分钟` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return zh ? `${hours} 小时 ${minutes % 60} 分钟` : `${hours} h ${minutes % 60} min`;
  const days = Math.floor(hours / 24);
  return zh ? `${days} 天 ${hours % 24} 小时` : `${days} d ${hours % 24} h`;
}
