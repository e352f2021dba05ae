//! Hand-off tokens: 128 bits written as 32 lowercase hex digits, the only credential of a
//! hand-off (see handoff.rs for how they are used).
//!
//! `token = tag << 64 | (sequence ^ SipHash-2-4(k_mask, tag))` with
//! `tag = SipHash-2-4(k_tag, sequence)`: `sequence` numbers the allocator's hand-offs and the
//! two 128-bit keys ([`Keys`]) come from the operating system's CSPRNG (`getrandom`) at the
//! allocator's first hand-off. A token decodes to its sequence and is genuine only if its
//! tag is that sequence's: without the keys a guess names a given hand-off with probability
//! 2⁻⁶⁴ at most, and the masked low half hides the sequence.

use crate::handoff::HandoffError;

/// A hand-off token: 128 bits, the hand-off's only credential (see the module docs).
/// [`Token::to_text`] / [`Token::parse`] write and read it as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u128);

impl Token {
    /// Characters of [`Token::to_text`].
    pub const TEXT_LEN: usize = 32;

    /// The token with these bits.
    #[must_use]
    pub const fn from_bits(bits: u128) -> Self {
        Self(bits)
    }

    /// Its 128 bits.
    #[must_use]
    pub const fn bits(self) -> u128 {
        self.0
    }

    /// 32 lowercase hex digits, most significant first.
    #[must_use]
    pub fn to_text(self) -> [u8; Self::TEXT_LEN] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0; Self::TEXT_LEN];
        for (i, c) in out.iter_mut().enumerate() {
            *c = DIGITS[((self.0 >> (4 * (Self::TEXT_LEN - 1 - i))) & 0xf) as usize];
        }
        out
    }

    /// Reads [`Token::to_text`]'s form: exactly 32 characters `0-9a-f` (UTF-8 bytes or
    /// UTF-16 units); anything else (other lengths, upper case, other characters) is `None`,
    /// so a token has one spelling and every altered character is a different token or none.
    #[must_use]
    pub fn parse<C: Copy + Into<u32>>(text: &[C]) -> Option<Self> {
        if text.len() != Self::TEXT_LEN {
            return None;
        }
        // Branch-free (random digits would mispredict a digit-or-letter branch every time),
        // each half in its own 64-bit chain.
        let half = |digits: &[C]| {
            let (mut bits, mut bad) = (0u64, 0u8);
            for &c in digits {
                let c: u32 = c.into();
                let value = HEX_VALUE[(c & 0xff) as usize] | (u8::from(c > 0xff) << 4);
                bad |= value;
                bits = (bits << 4) | u64::from(value & 0xf);
            }
            (bits, bad)
        };
        let (high, high_bad) = half(&text[..Self::TEXT_LEN / 2]);
        let (low, low_bad) = half(&text[Self::TEXT_LEN / 2..]);
        ((high_bad | low_bad) & INVALID_DIGIT == 0).then_some(Self((u128::from(high) << 64) | u128::from(low)))
    }
}

/// Marks a character that is not a lowercase hex digit in [`HEX_VALUE`].
const INVALID_DIGIT: u8 = 0x10;

/// The value of each Latin-1 character as a lowercase hex digit, or [`INVALID_DIGIT`].
const HEX_VALUE: [u8; 256] = {
    let mut table = [INVALID_DIGIT; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({self})")
    }
}

/// One SipHash round.
#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-2-4 of the 8 bytes of `message` (little-endian), keyed by `key` (k0, k1): a
/// 64-bit PRF (Aumasson & Bernstein, 2012).
fn siphash24(key: [u64; 2], message: u64) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    // The message block, then the final block: the length (8) in the top byte.
    for block in [message, 8 << 56] {
        v[3] ^= block;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= block;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The secret keys of an allocator's tokens.
#[derive(Clone, Copy)]
pub(crate) struct Keys {
    tag: [u64; 2],
    mask: [u64; 2],
}

impl Keys {
    /// 256 bits from the operating system's CSPRNG.
    pub(crate) fn from_os() -> Result<Self, HandoffError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| HandoffError::RandomUnavailable)?;
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(chunk);
            *word = u64::from_le_bytes(le);
        }
        Ok(Self { tag: [words[0], words[1]], mask: [words[2], words[3]] })
    }

    pub(crate) fn token(&self, sequence: u64) -> Token {
        let tag = siphash24(self.tag, sequence);
        Token((u128::from(tag) << 64) | u128::from(sequence ^ siphash24(self.mask, tag)))
    }

    /// The sequence of a genuine token (its tag is the sequence's), else `None`.
    pub(crate) fn sequence_of(&self, token: Token) -> Option<u64> {
        let tag = (token.0 >> 64) as u64;
        let sequence = (token.0 as u64) ^ siphash24(self.mask, tag);
        (siphash24(self.tag, sequence) == tag).then_some(sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash24_matches_the_reference_vector_and_std() {
        // The reference implementation's vectors: key 00..0f, message 00..07 (entry 8).
        let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        assert_eq!(siphash24(key, 0x0706_0504_0302_0100), 0x93f5_f579_9a93_2462);
        // std's (deprecated) SipHasher is SipHash-2-4 too.
        let mut x = 0x1234_5678_9abc_def0_u64;
        for _ in 0..1000 {
            x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) ^ 0xA5A5;
            let key = [x, x.rotate_left(17) ^ 0x55];
            #[allow(deprecated, reason = "the reference for the test only")]
            let mut std_hasher = std::hash::SipHasher::new_with_keys(key[0], key[1]);
            std::hash::Hasher::write(&mut std_hasher, &x.to_le_bytes());
            assert_eq!(siphash24(key, x), std::hash::Hasher::finish(&std_hasher));
        }
    }

    #[test]
    fn token_text_is_32_lowercase_hex_digits_with_one_spelling() {
        let token = Token::from_bits(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(&token.to_text(), b"0123456789abcdeffedcba9876543210");
        assert_eq!(token.to_string(), "0123456789abcdeffedcba9876543210");
        assert_eq!(Token::parse(&token.to_text()), Some(token));
        let units: Vec<u16> = token.to_string().encode_utf16().collect();
        assert_eq!(Token::parse(&units), Some(token));
        for bad in [
            &b"0123456789ABCDEFFEDCBA9876543210"[..],
            b"0123456789abcdeffedcba987654321",
            b"0123456789abcdeffedcba98765432100",
            b"0123456789abcdeffedcba987654321g",
            b" 123456789abcdeffedcba9876543210",
            b"",
        ] {
            assert_eq!(Token::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // A UTF-16 unit whose low byte is a digit is not that digit.
        let mut wide = units.clone();
        wide[0] = 0x0130;
        assert_eq!(Token::parse(&wide), None);
    }
}
