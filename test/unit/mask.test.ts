import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type MaskKind, maskField, maskPii } from '../../operators/mask.js';

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

describe('maskPii: full-width digits', () => {
  it.each([
    ['我的手机号是１３８１２３４５６７８', '我的手机号是１３８****５６７８'],
    ['电话：１３８－１２３４－５６７８。', '电话：１３８****５６７８。'],
    ['＋８６　１３９１２３４５６７８', '＋８６　１３９****５６７８'],
    ['身份证１１０１０５１９９００３０７１２３Ｘ', '身份证１１０１０５********１２３Ｘ'],
    ['（０２１）１２３４５６７８', '（０２１）****５６７８'],
    ['邮箱ｚｓ＠１６３．ｃｏｍ', '邮箱ｚ***＠１６３．ｃｏｍ'],
    ['护照Ｅ１２３４５６７８', '护照Ｅ*****６７８'],
    ['mixed １３８1234５６７８', 'mixed １３８****５６７８'],
  ])('%s → %s', (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([
    ['订单号２０２４１１０１１２３４', 'a 12-digit order id'],
    ['￥１２９９．００', 'a price'],
    ['２０２４年１１月１日', 'a date'],
    ['１２３４５６７８９０１', '11 digits not starting 1[3-9]'],
  ])('leaves %s alone (%s)', (input) => {
    expect(maskPii(input)).toBe(input);
  });
});

describe('maskPii: landlines', () => {
  it.each([
    // With an area code (0 + 10, 2x or a 3-digit code starting 3–9), anywhere.
    ['010-12345678', '010-****5678'],
    ['请拨0755 1234 5678转人工', '请拨0755 **** 5678转人工'],
    ['(021)12345678', '(021)****5678'],
    ['(021) 1234-5678', '(021) ****-5678'],
    ['座机0571-8765432', '座机0571-***5432'],
    ['075512345678', '0755****5678'],
    ['+86 10 12345678', '+86 10 ****5678'],
    ['0086-755-12345678', '0086-755-****5678'],
    ['+86 (0)21 12345678', '+86 (0)21 ****5678'],
    ['010-12345678-8001', '010-****5678-8001'], // the extension stays: alone it names no one
    // Without an area code only after a cue.
    ['电话：87654321', '电话：****4321'],
    ['座机号 8765 4321', '座机号 **** 4321'],
    ['固话是2345678', '固话是***5678'],
    ['tel: 8765-4321', 'tel: ****-4321'],
    ['Tel.23456789', 'Tel.****6789'],
  ])('%s → %s', (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([
    ['87654321', 'a bare 8-digit run without a cue (a date, an id, an amount)'],
    ['共计12345678元', 'an amount'],
    ['20241101', 'a date'],
    ['01012345678901', '14 digits: a landline inside a longer run'],
    ['010-123456789', 'a 9-digit local number'],
    ['0101234567', 'local number starting 0... no: 010 + 1234567 is a landline'],
    ['SKU075512345678', 'a code: letters right before the 0'],
    ['07551234', 'area code and 4 digits'],
    ['2024-01-15 10:20:30', 'a date and time'],
    ['hotel 12345678', '"tel" inside a word is no cue'],
    ['电话12345678901', 'a cue, then 11 digits that are no mobile: not cut'],
    ['ORD-0755-1234', 'an order id with a short 0-led group'],
  ])('leaves %s alone (%s)', (input) => {
    if (input === '0101234567') expect(maskPii(input)).toBe('010***4567');
    else expect(maskPii(input)).toBe(input);
  });
});

describe('maskPii: passports', () => {
  it.each([
    ['E12345678', 'E*****678'],
    ['护照 EA1234567 到期了', '护照 EA****567 到期了'],
    ['护照号码：G12345678', '护照号码：G*****678'],
    ['护照号是e12345678', '护照号是e*****678'],
    ['通行证C12345678', '通行证C*****678'],
    ['passport no. P1234567', 'passport no. P****567'],
    ['Passport: K123456789', 'Passport: K******789'],
  ])('%s → %s', (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([
    ['SO20241101', 'an order id: letters before'],
    ['订单E202411019', 'E + 9 digits without a cue'],
    ['E1234567', 'E + 7 digits without a cue'],
    ['G12345678', 'the old G series only after a cue (also a product code shape)'],
    ['e12345678', 'lower case without a cue'],
    ['SKU-E12345678X', 'a letter right after'],
    ['ORDER12345678', 'a word before the digits'],
  ])('leaves %s alone (%s)', (input) => {
    expect(maskPii(input)).toBe(input);
  });
});

describe('maskPii: names after a cue', () => {
  it.each([
    ['我叫张三', '我叫张*'],
    ['我叫张三，想问一下订单', '我叫张*，想问一下订单'],
    ['你好我叫王小明想退货', '你好我叫王**想退货'],
    ['我的名字是李四', '我的名字是李*'],
    ['名字叫赵六', '名字叫赵*'],
    ['收货人：李四，电话13912345678', '收货人：李*，电话139****5678'],
    ['收件人 欧阳娜娜', '收件人 欧阳**'],
    ['联系人：诸葛亮', '联系人：诸葛*'],
    ['姓名:陈小红 地址:...', '姓名:陈** 地址:...'],
    ['姓名：Zhang San', '姓名：Z**** ***'],
    ['持卡人是刘备', '持卡人是刘*'],
    // Without a separator a label or 我是 needs a common surname and a name that ends there.
    ['收货人张三电话138', '收货人张*电话138'],
    ['我是李四。', '我是李*。'],
    ['我是王小明', '我是王**'],
    ['收件人姓名：欧阳娜娜', '收件人姓名：欧阳**'],
  ])('%s → %s', (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([
    ['收货人信息有误', 'a label followed by a word, not a name'],
    ['联系人电话是多少', 'a stop character right after the label'],
    ['我是高级会员', '我是 + a surname-like character, but the word goes on'],
    ['我是新用户', '我是 + no common surname'],
    ['我叫了外卖', '叫 as a verb: a particle follows'],
    ['姓名栏填错了', 'a label followed by a word'],
    ['商品名称：婴儿推车', '名 in another word'],
    ['我叫张*', 'already masked'],
    ['收货人：欧阳**', 'already masked (compound surname)'],
    ['My name is Tom', 'English cues are not read'],
  ])('leaves %s alone (%s)', (input) => {
    expect(maskPii(input)).toBe(input);
  });
});

describe('maskPii: what is kept next to personal data', () => {
  it.each([
    ['订单SO20241101已发货', 'an order id with a date'],
    ['订单号 202411011234567 金额 ¥1299.00', 'a 15-digit order id and a price'],
    ['ORD-20240115-000123', 'an order id with a date in it'],
    ['合计 258.50 元，共 3 件', 'an amount and a count'],
    ['1,299.00 元', 'a price with a thousands separator'],
    ['下单时间 2024-11-01 10:20:30', 'a timestamp'],
    ['2024年11月1日 14:30', 'a date in Chinese'],
    ['ts 1700000000123', 'epoch milliseconds'],
    ['SKU A1234-567 / 型号 X200', 'product codes'],
    ['优惠券 CX2024DOUBLE11 满300减50', 'a coupon code'],
    ['快递单号 SF1234567890123', 'a waybill number with a carrier prefix'],
    ['房间 502 室，3 单元', 'short numbers'],
  ])('leaves %s alone (%s)', (input) => {
    expect(maskPii(input)).toBe(input);
  });

  it('masks each kind in one message and keeps the order id, amount and time between them', () => {
    const text =
      '我叫张三，电话+86 139-8765-4321，座机010-87654321，身份证110105199003071234，护照E12345678，' +
      '卡6225880000111121，邮箱zs@163.com，订单ORD-20240115-000123金额¥1299.00，2024-11-01 10:20';
    expect(maskPii(text)).toBe(
      '我叫张*，电话+86 139****4321，座机010-****4321，身份证110105********1234，护照E*****678，' +
        '卡************1121，邮箱z***@163.com，订单ORD-20240115-000123金额¥1299.00，2024-11-01 10:20',
    );
  });
});

describe('maskField: fields masked whole by their kind', () => {
  it.each<[MaskKind, string, string]>([
    ['phone', '13812345678', '138****5678'],
    ['phone', '+86 138-1234-5678', '+86 138****5678'],
    ['phone', '１３８１２３４５６７８', '１３８****５６７８'],
    ['phone', '010-12345678', '010-****5678'],
    ['phone', '(0755) 1234 5678', '(0755) **** 5678'],
    ['phone', '12345678', '****5678'], // no mobile, no area code: only the last 4 digits
    ['phone', '400-820-8820', '***-***-8820'],
    ['phone', '5678', '****'],
    ['email', 'zhang.san@example.com', 'z***@example.com'],
    ['email', 'not an email', 'n** ** *****'],
    ['name', '张三', '张*'],
    ['name', '王小明', '王**'],
    ['name', '欧阳娜娜', '欧阳**'],
    ['name', '司马', '司*'],
    ['name', '张', '*'],
    ['name', 'Zhang San', 'Z**** ***'],
    ['name', ' 李四 ', ' 李* '],
    ['address', '北京市朝阳区建国路88号3单元502室', '北京市朝阳区*************'],
    ['address', '广东省深圳市南山区科技园南区1栋', '广东省深圳市南山区*******'],
    ['address', '上海市浦东新区张江路 100 弄', '上海市浦东新区*** *** *'],
    ['address', '北京市阳光小区3号楼', '北京市*******'],
    ['address', '阳光小区3号楼', '*******'],
    ['address', '88 Jianguo Rd, Beijing', '** ******* *** *******'],
    ['text', '我叫张三，电话13812345678', '我叫张*，电话138****5678'],
    ['text', '请尽快发货', '请尽快发货'],
  ])('%s %s → %s', (kind, input, expected) => {
    expect(maskField(kind, input)).toBe(expected);
  });

  it('leaves an empty value empty', () => {
    for (const kind of ['text', 'name', 'phone', 'email', 'address'] as const)
      expect(maskField(kind, '')).toBe('');
  });
});

/** Text without a digit (ASCII or full-width), `@` (either width) or a name cue: the fast path. */
const noCandidate = (s: string) => !/[0-9@\uFF10-\uFF19\uFF20]|我[叫是]|名|[货件系卡]人/.test(s);

describe('maskPii: fast path and properties', () => {
  it('returns the very same string when there is no digit, no @ and no name cue', () => {
    const text = '你好，我想问一下发票的事情 hello';
    expect(maskPii(text)).toBe(text);
    expect(maskPii('')).toBe('');
  });

  it('never changes text without a digit, @ or name cue (property)', () => {
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom('a', ' ', '电', '话', '收', '人', '张', '三', '我', '：', 'E', '-'),
        }),
        fc.string(),
        (cjk, any) => [cjk, any].filter(noCandidate).every((s) => maskPii(s) === s),
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

  const pieces = [
    '13812345678',
    '+86 138 1234 5678',
    '110105199003071234',
    '6225880000111121',
    '6222 0212 3456 7890',
    '010-12345678',
    '0755 1234 5678',
    '(021)12345678',
    '电话',
    '8765 4321',
    'E12345678',
    '护照',
    'G1234567',
    '我叫',
    '收货人：',
    '收货人',
    '我是',
    '张三',
    '欧阳娜娜',
    '王',
    'Zhang San',
    'a.b@example.com',
    '１３８',
    '５６７８',
    ' ',
    '-',
    '，',
    '订单',
    'SO',
    'X',
    '7',
    '@',
  ];

  it('is idempotent: masked text is not masked again (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 12 }), (parts) => {
        const once = maskPii(parts.join(''));
        return maskPii(once) === once;
      }),
      { numRuns: 2000 },
    );
  });

  it('masks full-width digits exactly where it masks their ASCII twins (property)', () => {
    const wide = (s: string) => s.replace(/[0-9]/g, (d) => String.fromCharCode(d.charCodeAt(0) + 0xfee0));
    const narrow = (s: string) =>
      s.replace(/[\uFF10-\uFF19]/g, (d) => String.fromCharCode(d.charCodeAt(0) - 0xfee0));
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 8 }), (parts) => {
        const text = parts.join('');
        return narrow(maskPii(wide(text))) === maskPii(narrow(text));
      }),
      { numRuns: 1000 },
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

  it('leaves no landline with an area code behind (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('010', '021', '0755', '0571'),
        fc.constantFrom('-', ' ', ''),
        fc.stringMatching(/^[2-8][0-9]{7}$/),
        fc.constantFrom('座机', '请拨', '，', ''),
        (area, sep, local, before) => {
          const masked = maskPii(`${before}${area}${sep}${local}。`);
          return masked === `${before}${area}${sep}****${local.slice(4)}。`;
        },
      ),
    );
  });
});
