/**
 * PII masking of free text before it is stored, so that no analyst table holds it.
 *
 * What is masked, and what is deliberately left alone (docs/CLICKHOUSE.md "PII masking"):
 * - emails → first character + `***@domain`;
 * - 18-character national ID numbers (6-digit area, a birth date 18xx–20xx, 3 digits, a digit or
 *   X check character) → first 6 + `********` + last 4;
 * - bank cards: 16–19 digits written in groups of 4 (spaces or dashes) always, and an ungrouped
 *   16–19 digit run when it starts with 3–6 (Amex/JCB, Visa, Mastercard, UnionPay) and passes the
 *   Luhn check → every digit but the last 4 becomes `*`;
 * - mainland mobile numbers `1[3-9]x xxxx xxxx` (optional +86/86/0086 prefix, optional space or
 *   dash between the 3-4-4 groups) → `138****5678`.
 * A number is masked whole or not at all: every pattern refuses to start or end next to another
 * digit, so order ids, timestamps (10/13/16 digits), amounts and longer runs are never cut into.
 */

/** Any character worth a closer look; text without one is returned as is. */
const CANDIDATE = /[0-9@]/;

const EMAIL = /([A-Za-z0-9])[A-Za-z0-9._%+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})/g;

const NATIONAL_ID =
  /(?<!\d)([1-9]\d{5})(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(\d{3}[\dXx])(?!\d)/g;

/**
 * 4-4-4-4 and optionally 1–3 more, one separator kind throughout. A neighbouring group of 1–4
 * digits (or of an earlier mask's `*`) would make it part of a longer grouped number, so it is then
 * left alone; a longer run after a separator (a phone number) is another number.
 */
const CARD_GROUPED =
  /(?<![\d*])(?<!(?<![\d*])[\d*]{1,4}[ -])\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?(?![\d*])(?![ -][\d*]{1,4}(?![\d*]))/g;

const CARD_PLAIN = /(?<!\d)[3-6]\d{15,18}(?!\d)/g;

const MOBILE = /(?<!\d)((?:\+86|0086|86)[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)/g;

/** Masks phone numbers, national ID numbers, bank card numbers and emails in `text`. */
export function maskPii(text: string): string {
  if (!CANDIDATE.test(text)) return text;
  let out = text;
  // Emails first: a mobile number used as the local part (13812345678@qq.com) is one email.
  if (out.includes('@')) out = out.replace(EMAIL, '$1***@$2');
  // ID numbers before cards (an 18-digit ID can also be Luhn-valid) and before phones. Phones
  // before grouped cards: a masked phone (`138****5678`) no longer looks like a digit group that
  // would make a card next to it part of a longer number, so one pass masks what a second would.
  out = out.replace(NATIONAL_ID, '$1********$2');
  out = out.replace(MOBILE, (_m, prefix: string | undefined, first3: string, last4: string) => {
    return `${prefix ?? ''}${first3}****${last4}`;
  });
  out = out.replace(CARD_GROUPED, maskAllButLast4);
  out = out.replace(CARD_PLAIN, (m) => (luhnValid(m) ? maskAllButLast4(m) : m));
  return out;
}

/** Every digit except the last four becomes `*`; separators stay, so the shape is still readable. */
function maskAllButLast4(s: string): string {
  let digitsLeft = 0;
  for (let i = 0; i < s.length; i++) if (isDigit(s.charCodeAt(i))) digitsLeft++;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (isDigit(s.charCodeAt(i))) {
      out += digitsLeft > 4 ? '*' : ch;
      digitsLeft--;
    } else {
      out += ch;
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
