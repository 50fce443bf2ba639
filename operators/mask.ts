/**
 * Masking of personal data in text and in fields of a known kind. docs/PRIVACY.md has the table of
 * every pattern with what it masks and what it keeps; operators/privacy.ts decides which fields go
 * through which masker.
 *
 * Free text (`maskPii`):
 * - emails → first character + `***@domain`;
 * - 18-character national ID numbers (6-digit area, a birth date 18xx–20xx, 3 digits, a digit or
 *   X check character) → first 6 + `********` + last 4;
 * - mainland mobile numbers `1[3-9]x xxxx xxxx` (optional +86/86/0086 prefix, optional space or
 *   dash between the 3-4-4 groups) → `138****5678`;
 * - bank cards: 16–19 digits written in groups of 4 (spaces or dashes) always, and an ungrouped
 *   16–19 digit run when it starts with 3–6 (Amex/JCB, Visa, Mastercard, UnionPay) and passes the
 *   Luhn check → every digit but the last 4 becomes `*`;
 * - landlines with an area code (`010-12345678`, `0755 1234 5678`, `(021)12345678`, `+86 10
 *   12345678`) anywhere, and a bare local number (7–8 digits) only after a cue (`电话`, `座机`,
 *   `固话`, `热线`, `tel`) → the area code and the last 4 digits stay;
 * - passport numbers: after a cue (`护照`, `通行证`, `passport`) one or two letters and 7–9 digits;
 *   without a cue only the shape of current Chinese passports, a standalone `E` + 8 digits or `E` +
 *   letter + 7 digits → letters and the last 3 digits stay;
 * - Chinese names after a cue (`我叫`, `名字是`, `姓名：`, `收货人：`, `联系人 `...) → the surname
 *   stays, each character of the given name becomes `*`.
 * Full-width digits and letters (`１３８…`, `Ｅ１２…`, `（０２１）`) are read as their ASCII twins for
 * detection and masked in place: what is kept keeps its width.
 *
 * A number is masked whole or not at all: every pattern refuses to start or end next to another
 * digit, so order ids, timestamps (10/13/16 digits), amounts and longer runs are never cut into.
 */

/** Any character worth a closer look; text without one is returned as is (the fast path). */
const CANDIDATE = /[0-9@\uFF10-\uFF19\uFF20]|我[叫是]|名|[货件系卡]人/;
/** On the half-width text: a digit or `@`, without which no number or email pattern can match. */
const DIGIT_OR_AT = /[0-9@]/;
/** The characters every name cue contains. */
const NAME_CUE = /我[叫是]|名|[货件系卡]人/;
/** Full-width ASCII (U+FF01–FF5E) and the ideographic space: one UTF-16 unit each, like their twins. */
const FULL_WIDTH = /[\uFF01-\uFF5E\u3000]/;
const FULL_WIDTH_ALL = /[\uFF01-\uFF5E\u3000]/g;

const EMAIL = /([A-Za-z0-9])[A-Za-z0-9._%+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})/g;

const NATIONAL_ID =
  /(?<!\d)([1-9]\d{5})(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(\d{3}[\dXx])(?!\d)/g;

const MOBILE_SOURCE = '(?<!\\d)((?:\\+86|0086|86)[ -]?)?(1[3-9]\\d)[ -]?\\d{4}[ -]?(\\d{4})(?!\\d)';
const MOBILE = new RegExp(MOBILE_SOURCE, 'g');

/**
 * 4-4-4-4 and optionally 1–3 more, one separator kind throughout. A neighbouring group of 1–4
 * digits (or of an earlier mask's `*`) would make it part of a longer grouped number, so it is then
 * left alone; a longer run after a separator (a phone number) is another number.
 */
const CARD_GROUPED =
  /(?<![\d*])(?<!(?<![\d*])[\d*]{1,4}[ -])\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?(?![\d*])(?![ -][\d*]{1,4}(?![\d*]))/g;

const CARD_PLAIN = /(?<!\d)[3-6]\d{15,18}(?!\d)/g;

/**
 * Area codes without the trunk 0: 10 (Beijing), 20–29 (the other 2-digit codes), and 3-digit codes
 * starting 3–9. Local numbers: 7 or 8 digits not starting with 0, whole or split 3-4 / 4-4.
 */
const AREA = '(?:10|2[0-9]|[3-9][0-9]{2})';
const LOCAL = '(?:[1-9][0-9]{6,7}|[1-9][0-9]{3}[ -][0-9]{4}|[1-9][0-9]{2}[ -][0-9]{4})';
/**
 * Group 1: what stays (prefix and area code), group 2: the local number. Neither a digit nor an
 * ASCII letter may come before a 0: product and order codes often hold 0-led digit runs
 * (`SKU0755…`). Nor may `*`: a name masked later in the same pass (`Zhang San0755…` becomes
 * `Z**** ***0755…`) must not make the number a landline on a second pass.
 */
const LANDLINE_SOURCE =
  `((?:(?:(?<![0-9])\\+86|(?<![0-9A-Za-z*])0086)[ -]?(?:\\(0?${AREA}\\)|\\(0\\) ?${AREA}|${AREA})` +
  `|(?<![0-9])\\(0${AREA}\\)|(?<![0-9A-Za-z*])0${AREA})[ -]?)(${LOCAL})(?![0-9])`;
const LANDLINE = new RegExp(LANDLINE_SOURCE, 'g');

/** Separators between a cue and what it announces (full-width `：` is `:` by then). */
const GAP = '[:\\s]*(?:是|为)?[:\\s]*';
/** A local number without area code, only after a cue: an 8-digit run alone may be a date or an id. */
const LANDLINE_CUED = new RegExp(
  `((?:电话(?:号码)?|座机(?:号码?)?|固话|热线|(?<![A-Za-z])(?:[Tt]el|TEL)\\.?)${GAP})(${LOCAL})(?![0-9])`,
  'g',
);

const PASSPORT_CUED = new RegExp(
  `((?:护照|通行证)(?:号码|号)?${GAP}|(?<![A-Za-z])[Pp]assport(?:\\s*(?:[Nn]o\\.?|[Nn]umber|#))?${GAP})([A-Za-z]{1,2}[0-9]{7,9})(?![0-9A-Za-z])`,
  'g',
);
/** Current Chinese passports (E + 8 digits, E + letter + 7 digits), standalone. */
const PASSPORT = /(?<![0-9A-Za-z])(?:E[0-9]{8}|E[A-HJ-NP-Z][0-9]{7})(?![0-9A-Za-z])/g;

const HAN = '\\u4e00-\\u9fff';
/**
 * Characters that end a name rather than belong to it: particles, pronouns, verbs and the words
 * that follow a name label (`收货人信息`, `联系人电话`, `姓名栏`). Given names rarely use them.
 */
const STOP =
  '的了在是想要我你他她们电手地址住联收请帮吗呢啊吧哦呀和跟与及或先女号码谢您说订单给让把被对就也都还又已能这那哪什么怎因所但如有没不很太刚才打发送寄今昨下问买来去到信息姓名邮身证栏处改填写资料';
/** One character of a given name: a Chinese character that is not a stop character. */
const GIVEN = `(?:(?![${STOP}])[${HAN}])`;
const COMPOUND_SURNAMES = [
  '欧阳',
  '司马',
  '上官',
  '诸葛',
  '东方',
  '皇甫',
  '尉迟',
  '公孙',
  '慕容',
  '令狐',
  '长孙',
  '宇文',
  '夏侯',
  '轩辕',
  '端木',
  '司徒',
  '南宫',
  '独孤',
  '西门',
  '呼延',
  '澹台',
  '申屠',
  '太史',
  '万俟',
  '闻人',
  '赫连',
  '钟离',
] as const;
const COMPOUND = COMPOUND_SURNAMES.join('|');
/** The hundred most common single-character surnames: what a name without a separator must start with. */
const COMMON_SURNAMES =
  '王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤';
const LATIN_NAME = '[A-Z][a-z]+(?: [A-Z][a-z]+){0,2}';
/** Labels after which a name is expected (`收货人：李四`). */
const LABELS = '姓名|收货人|收件人|寄件人|联系人|持卡人';
/**
 * A cue that announces a name (`我叫`, `名字是`, or a label with a separator), then a surname (a
 * compound one first) and 1–2 given-name characters, or a name in Latin letters. Groups: 1 cue and
 * surname (kept), 2 given name, 3 cue, 4 Latin name. Never before `*`: a masked name stays as is.
 */
const NAME_CUED = new RegExp(
  `((?:我叫|(?:我的)?名字(?:是|叫)|(?:${LABELS})(?:[:\\s]*(?:是|为)|[:\\s]+))[:\\s]*(?:${COMPOUND}|${GIVEN}))(${GIVEN}{1,2})(?![*])` +
    `|((?:我叫|(?:我的)?名字(?:是|叫)|(?:${LABELS})(?:[:\\s]*(?:是|为)|[:\\s]+))[:\\s]*)(${LATIN_NAME})(?![A-Za-z*])`,
  'g',
);
/**
 * A label or `我是` directly followed by a name (`收货人张三`, `我是李四。`): only a common surname,
 * and the name must end there (punctuation, a digit, the end, or a stop character), so `我是高级会员`
 * and `收货人信息` are no names.
 */
const NAME_BARE = new RegExp(
  `((?:我是|${LABELS})(?:${COMPOUND}|[${COMMON_SURNAMES}]))(${GIVEN}{1,2})(?!${GIVEN})(?![*])`,
  'g',
);

/**
 * Builds the replacement of match `m` at `at` from slices of `src` (the original text or its
 * half-width twin: what stays) and literals (`*`), or returns undefined to leave the match alone.
 * `groups` starts with the match's groups (String.replace's arguments after the match). Called once
 * per text being built, so it must depend only on its arguments.
 */
type Replacer = (src: string, at: number, m: string, groups: ReadonlyArray<unknown>) => string | undefined;

/**
 * The text being masked: patterns match the half-width text (`norm`); with full-width characters
 * the original (`orig`) receives the same edits, so kept characters keep their width. Full-width
 * forms are one UTF-16 unit like their twins, so both strings stay aligned edit after edit.
 */
class Masking {
  constructor(
    private norm: string,
    private orig: string | undefined,
  ) {}

  get text(): string {
    return this.orig ?? this.norm;
  }

  get halfWidth(): string {
    return this.norm;
  }

  apply(re: RegExp, fn: Replacer): void {
    // No closures but the replace callbacks: this runs for every pattern of every candidate text.
    const norm = this.norm;
    const orig = this.orig;
    if (orig === undefined) {
      this.norm = norm.replace(re, (m: string, ...rest: unknown[]) => {
        return fn(norm, rest[rest.length - 2] as number, m, rest) ?? m;
      });
      return;
    }
    let out = '';
    let last = 0;
    this.norm = norm.replace(re, (m: string, ...rest: unknown[]) => {
      const at = rest[rest.length - 2] as number;
      const half = fn(norm, at, m, rest);
      if (half === undefined) return m;
      out += orig.slice(last, at) + fn(orig, at, m, rest)!;
      last = at + m.length;
      return half;
    });
    this.orig = out + orig.slice(last);
  }
}

function masking(text: string): Masking {
  return FULL_WIDTH.test(text) ? new Masking(halfWidth(text), text) : new Masking(text, undefined);
}

/** Full-width ASCII and the ideographic space as their ASCII twins (same length). */
function halfWidth(s: string): string {
  return s.replace(FULL_WIDTH_ALL, (c) =>
    c === '\u3000' ? ' ' : String.fromCharCode(c.charCodeAt(0) - 0xfee0),
  );
}

/** The length of group `i` (0-based) of a match, 0 when it did not take part. */
function len(groups: ReadonlyArray<unknown>, i: number): number {
  const g = groups[i];
  return typeof g === 'string' ? g.length : 0;
}

const maskEmail: Replacer = (src, at, m) => {
  const i = m.indexOf('@');
  return `${src.slice(at, at + 1)}***${src.slice(at + i, at + m.length)}`;
};
const maskNationalId: Replacer = (src, at) =>
  `${src.slice(at, at + 6)}********${src.slice(at + 14, at + 18)}`;
const maskMobile: Replacer = (src, at, m, g) => {
  const keep = len(g, 0) + 3;
  return `${src.slice(at, at + keep)}****${src.slice(at + m.length - 4, at + m.length)}`;
};
const maskCard: Replacer = (src, at, m) => maskDigits(src, at, m, 0, 4);
const maskCardPlain: Replacer = (src, at, m) => (luhnValid(m) ? maskDigits(src, at, m, 0, 4) : undefined);
/** Group 1 (prefix, area code, cue) stays; of the rest every digit but the last 4 becomes `*`. */
const maskAfterGroup1: Replacer = (src, at, m, g) => maskDigits(src, at, m, len(g, 0), 4);
const maskPassportCued: Replacer = (src, at, m, g) => maskDigits(src, at, m, len(g, 0), 3);
const maskPassport: Replacer = (src, at, m) => maskDigits(src, at, m, 0, 3);
const maskNameCued: Replacer = (src, at, m, g) => {
  if (typeof g[1] === 'string') return src.slice(at, at + len(g, 0)) + '*'.repeat(g[1].length);
  const cue = len(g, 2);
  return src.slice(at, at + cue) + maskLetters(src.slice(at + cue, at + m.length));
};
const maskNameBare: Replacer = (src, at, _m, g) => src.slice(at, at + len(g, 0)) + '*'.repeat(len(g, 1));

/**
 * Masks personal data in free text: emails, national ID numbers, mobile numbers, bank cards,
 * landlines, passport numbers and names after a cue (see the header). Text without a digit, `@`
 * or name cue is returned as is.
 */
export function maskPii(text: string): string {
  if (!CANDIDATE.test(text)) return text;
  const s = masking(text);
  if (DIGIT_OR_AT.test(s.halfWidth)) maskNumbers(s);
  if (NAME_CUE.test(text)) {
    s.apply(NAME_CUED, maskNameCued);
    s.apply(NAME_BARE, maskNameBare);
  }
  return s.text;
}

function maskNumbers(s: Masking): void {
  // Emails first: a mobile number used as the local part (13812345678@qq.com) is one email.
  if (s.halfWidth.includes('@')) s.apply(EMAIL, maskEmail);
  // ID numbers before cards (an 18-digit ID can also be Luhn-valid) and before phones. Phones
  // before grouped cards: a masked phone (`138****5678`) no longer looks like a digit group that
  // would make a card next to it part of a longer number, so one pass masks what a second would.
  s.apply(NATIONAL_ID, maskNationalId);
  s.apply(MOBILE, maskMobile);
  s.apply(CARD_GROUPED, maskCard);
  s.apply(CARD_PLAIN, maskCardPlain);
  // Landlines after cards: four groups of 4 starting with 0 are a card, not a landline and a group.
  s.apply(LANDLINE, maskAfterGroup1);
  s.apply(LANDLINE_CUED, maskAfterGroup1);
  s.apply(PASSPORT_CUED, maskPassportCued);
  s.apply(PASSPORT, maskPassport);
}

/** What a field holds, which decides how its value is masked (docs/PRIVACY.md "Fields"). */
export type MaskKind = 'text' | 'name' | 'phone' | 'email' | 'address';

/** Every kind, in the order the docs and config messages list them. */
export const MASK_KINDS: readonly MaskKind[] = ['text', 'name', 'phone', 'email', 'address'];

/**
 * Masks a field's value by its kind: `text` by the patterns of {@link maskPii}; the others whole,
 * whatever the value looks like: a `phone` field keeps the shape of a mobile (`138****5678`) or
 * landline (`010-****5678`) mask, else only its last 4 digits; an `email` keeps `z***@domain`,
 * else only its first character; a `name` keeps the surname (`张*`, `欧阳**`, `Z**** ***`); an
 * `address` keeps its leading province, city and district (`北京市朝阳区******`).
 */
export function maskField(kind: MaskKind, value: string): string {
  if (value === '') return value;
  switch (kind) {
    case 'text':
      return maskPii(value);
    case 'phone':
      return maskPhone(value);
    case 'email':
      return maskEmailField(value);
    case 'name':
      return maskName(value);
    case 'address':
      return maskAddress(value);
  }
}

const MOBILE_ONLY = new RegExp(`^\\s*${MOBILE_SOURCE}\\s*$`);
const LANDLINE_ONLY = new RegExp(`^\\s*${LANDLINE_SOURCE}\\s*$`);

function maskPhone(value: string): string {
  const s = masking(value);
  if (MOBILE_ONLY.test(s.halfWidth)) s.apply(MOBILE, maskMobile);
  else if (LANDLINE_ONLY.test(s.halfWidth)) s.apply(LANDLINE, maskAfterGroup1);
  else return maskDigits(value, 0, halfWidth(value), 0, 4, true);
  return s.text;
}

function maskEmailField(value: string): string {
  const s = masking(value);
  if (s.halfWidth.includes('@')) {
    s.apply(EMAIL, maskEmail);
    if (s.text !== value) return s.text;
  }
  return maskLetters(value);
}

const COMPOUND_SET: ReadonlySet<string> = new Set(COMPOUND_SURNAMES);
const ALL_HAN = new RegExp(`^[${HAN}]+$`);

function maskName(value: string): string {
  const name = value.trim();
  if (!ALL_HAN.test(name)) return maskLetters(value);
  if (name.length === 1) return value.replace(name, '*');
  const surname = name.length > 2 && COMPOUND_SET.has(name.slice(0, 2)) ? 2 : 1;
  return value.replace(name, name.slice(0, surname) + '*'.repeat(name.length - surname));
}

/** Province (or autonomous region), city, district or county at the start, as far as they are written. */
const ADDRESS_REGION = new RegExp(
  `^\\s*(?:[${HAN}]{2,7}?(?:省|自治区|特别行政区))?(?:[${HAN}]{1,7}?(?:市|自治州|地区|盟))?`,
);
/** A district or county, only after a province or city: `阳光小区` alone is a housing estate. */
const ADDRESS_DISTRICT = new RegExp(`^[${HAN}]{1,7}?(?:(?<![小社园校景厂])区|县|旗|市)`);

function maskAddress(value: string): string {
  const region = ADDRESS_REGION.exec(value)![0];
  let keep = region.trim() === '' ? 0 : region.length;
  if (keep > 0) keep += ADDRESS_DISTRICT.exec(value.slice(keep))?.[0].length ?? 0;
  return value.slice(0, keep) + value.slice(keep).replace(/\S/gu, '*');
}

/** The first non-space character stays, every other one but whitespace becomes `*`. */
function maskLetters(value: string): string {
  let first = true;
  return value.replace(/\S/gu, (c) => {
    if (!first) return '*';
    first = false;
    return c;
  });
}

/**
 * Copies `m` (matched at `at`) from `src`, where from index `from` on every digit but the last
 * `keepLast` becomes `*` (separators and letters stay, so the shape is still readable). With
 * `atLeastOne`, a value of `keepLast` digits or fewer is masked whole rather than not at all.
 */
function maskDigits(
  src: string,
  at: number,
  m: string,
  from: number,
  keepLast: number,
  atLeastOne = false,
): string {
  let digits = 0;
  for (let i = from; i < m.length; i++) if (isDigit(m.charCodeAt(i))) digits++;
  const keep = atLeastOne && digits <= keepLast ? 0 : keepLast;
  let out = src.slice(at, at + from);
  for (let i = from; i < m.length; i++) {
    if (isDigit(m.charCodeAt(i))) {
      out += digits > keep ? '*' : src[at + i];
      digits--;
    } else {
      out += src[at + i];
    }
  }
  return out;
}

function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}
