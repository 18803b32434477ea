import { useI18n, type Lang } from './i18n';

const formats = new Map<Lang, Intl.DateTimeFormat>();
function formatFor(lang: Lang): Intl.DateTimeFormat {
  let format = formats.get(lang);
  if (!format) {
    format = new Intl.DateTimeFormat(lang === 'zh-CN' ? 'zh-CN' : 'en-GB', {
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formats.set(lang, format);
  }
  return format;
}

export function localTime(iso: string, lang: Lang): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : formatFor(lang).format(date);
}

/** A time in the browser's zone, the ISO instant in `datetime` and as a tooltip. */
export function Time({ iso }: { iso: string | null | undefined }) {
  const { lang, t } = useI18n();
  if (!iso) return <span>{t('delivery.none')}</span>;
  return (
    <time dateTime={iso} title={iso}>
      {localTime(iso, lang)}
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
