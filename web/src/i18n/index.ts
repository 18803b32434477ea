import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { en, type Dictionary, type MessageKey } from './en';
import { zhCN } from './zh-cn';

export type Lang = 'en' | 'zh-CN';
export type { MessageKey };

const dictionaries: Record<Lang, Dictionary> = { en, 'zh-CN': zhCN };
const storageKey = 'ngw.lang';

/** The remembered choice, else the browser's language: Chinese for any zh, English otherwise. */
export function initialLang(): Lang {
  try {
    const stored = localStorage.getItem(storageKey);
    if (stored === 'en' || stored === 'zh-CN') return stored;
  } catch {
    // Storage may be off: follow the browser.
  }
  return /^zh\b/i.test(navigator.language ?? '') ? 'zh-CN' : 'en';
}

export function rememberLang(lang: Lang): void {
  try {
    localStorage.setItem(storageKey, lang);
  } catch {
    // Not remembered: the switch still works for this page.
  }
}

export type Translate = (key: MessageKey, values?: Record<string, string | number>) => string;

export function translator(lang: Lang): Translate {
  const dictionary = dictionaries[lang];
  return (key, values) => {
    const text = dictionary[key];
    return values ? text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in values ? String(values[name]) : whole)) : text;
  };
}

export interface I18n {
  lang: Lang;
  t: Translate;
}

export const I18nContext = createContext<I18n>({ lang: 'en', t: translator('en') });
export const useI18n = () => useContext(I18nContext);
