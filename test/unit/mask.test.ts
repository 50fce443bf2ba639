import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maskPii } from '../../operators/mask.js';

describe('maskPii: mobile numbers', () => {
  it.each([
    ['我的手机号是13812345678', '我的手机号是138****5678'],
    ['call 138 1234 5678 please', 'call 138****5678 please'],
    ['138-1234-5678', '138****5678'],
    ['+86 138 1234 5678', '+86 138****5678'],
    ['+8613812345678', '+86138****5678'],
    ['8613812345678', '86138****5678'],
    ['0086-19912345678', '0086-199****5678'],
    ['tel:15012345678.', 'tel:150****5678.'],
    ['phone13812345678', 'phone138****5678'],
    ['13812345678,13987654321', '138****5678,139****4321'],
  ])('%s → %s', (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([
    ['12345678901', 'second digit 2 is no mobile prefix'],
    ['213812345678', '12 digits: a mobile number inside a longer run'],
    ['138123456789', '12 digits: the run goes on after the 11th'],
    ['1700000000123', 'epoch milliseconds (13 digits)'],
    ['1700000000', 'epoch seconds (10 digits)'],
    ['2024-01-15 13:45:00', 'a date and time'],
    ['订单 23456789012 已发货', '11-digit order id not starting 1[3-9]'],
  ])('leaves %s alone (%s)', (input) => {
    expect(maskPii(input)).toBe(input);
  });
});

describe('maskPii: national ID numbers', () => {
  it.each([
    ['身份证110105199003071234', '身份证110105********1234'],
    ['11010519900307123X', '110105********123X'],
    ['id 44030420001231002x ok', 'id 440304********002x ok'],
  ])('%s → %s', (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([
    ['202401151234567890', '18 digits whose "birth date" 1512-34-56 is impossible (an order id)'],
    ['1101051990030712345', '19 digits: an ID-shaped prefix inside a longer run'],
    ['110105199013071234', 'month 13'],
  ])('leaves %s alone (%s)', (input) => {
    expect(maskPii(input)).toBe(input);
  });
});

describe('maskPii: bank cards', () => {
  it.each([
    ['卡号6225880000111121', '卡号************1121'],
    ['4111111111111111', '************1111'],
    ['6222021234567890128', '***************0128'],
    // Written in groups of 4 is masked even without a valid Luhn digit: that is how people write cards.
    ['6222 0212 3456 7890', '**** **** **** 7890'],
    ['6222-0212-3456-7890-123', '****-****-****-***0-123'],
    ['6222 0212 3456 7890 13812345678', '**** **** **** 7890 138****5678'],
    ['13812345678 6222 0212 3456 7890', '138****5678 **** **** **** 7890'],
  ])('%s → %s', (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([
    ['6225880000111122', 'ungrouped, Luhn check fails: taken for an order id'],
    ['1700000000123456', 'epoch microseconds: Luhn-valid but cards do not start with 1'],
    ['20240115123456789012', '20 digits'],
    ['1234 5678 9012 3456 7890', 'five groups of 4 are not a card, and not cut to four groups'],
    ['12 3456 7890 1234 5678', 'a short group before four groups of 4'],
    ['6222 0212-3456 7890', 'mixed separators'],
    ['¥1299.00', 'a price'],
    ['1,299.00 元', 'a price with a thousands separator'],
    ['ORD-20240115-000123', 'an order id with a date in it'],
  ])('leaves %s alone (%s)', (input) => {
    expect(maskPii(input)).toBe(input);
  });
});

describe('maskPii: emails', () => {
  it.each([
    ['zhang.san@example.com', 'z***@example.com'],
    ['mail me at a@b.co now', 'mail me at a***@b.co now'],
    ['13812345678@qq.com', '1***@qq.com'],
    ['<Li_Lei+shop@mail.example.com.cn>', '<L***@mail.example.com.cn>'],
  ])('%s → %s', (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([['hi @bot'], ['a@b'], ['@@']])('leaves %s alone', (input) => {
    expect(maskPii(input)).toBe(input);
  });
});

describe('maskPii: mixed text and fast path', () => {
  it('masks every kind in one message', () => {
    const text =
      '我叫张三，电话+86 139-8765-4321，身份证110105199003071234，卡6225880000111121，邮箱zs@163.com，订单ORD-20240115-000123金额¥1299.00';
    expect(maskPii(text)).toBe(
      '我叫张三，电话+86 139****4321，身份证110105********1234，卡************1121，邮箱z***@163.com，订单ORD-20240115-000123金额¥1299.00',
    );
  });

  it('returns the very same string when there is no digit and no @', () => {
    const text = '你好，我想问一下发票的事情 hello';
    expect(maskPii(text)).toBe(text);
    expect(maskPii('')).toBe('');
  });

  it('never changes text without digits or @ (property)', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !/[0-9@]/.test(s)),
        (s) => maskPii(s) === s,
      ),
    );
  });

  it('never cuts into a digit run longer than 19 (property)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{20,40}$/), fc.string({ maxLength: 5 }), (digits, tail) => {
        const text = `x${digits}${tail.replace(/[0-9@]/g, '')}`;
        return maskPii(text) === text;
      }),
    );
  });

  it('is idempotent: masked text is not masked again (property)', () => {
    const piece = fc.constantFrom(
      '13812345678',
      '+86 138 1234 5678',
      '110105199003071234',
      '6225880000111121',
      '6222 0212 3456 7890',
      'a.b@example.com',
      ' ',
      '-',
      '订单',
      'X',
      '7',
      '@',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const once = maskPii(pieces.join(''));
        return maskPii(once) === once;
      }),
    );
  });

  it('leaves no 11-digit mobile number behind in generated messages (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('3', '5', '8', '9'),
        fc.stringMatching(/^[0-9]{9}$/),
        fc.constantFrom('电话', 'tel: ', '号码是', ''),
        fc.constantFrom('，谢谢', '.', ' ', ''),
        (second, rest, before, after) => {
          const phone = `1${second}${rest}`;
          const masked = maskPii(`${before}${phone}${after}`);
          return !masked.includes(phone) && masked.includes(`${phone.slice(0, 3)}****${phone.slice(7)}`);
        },
      ),
    );
  });
});
