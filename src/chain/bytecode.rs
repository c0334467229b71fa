//! What a contract's runtime code shows of the functions it dispatches: the values it pushes.
//! A Solidity (or Vyper) dispatcher compares the call's first four bytes with each function's
//! selector, pushed as a constant; so a selector that no push in the code carries names no
//! function of that code (a proxy's functions live in another contract's code).
//!
//! The walk follows the opcodes from the first byte, skipping each PUSH's data, so bytes inside
//! another push never count. A selector with leading zero bytes is pushed shorter by solc's
//! optimizer (0x0000699c as PUSH2 0x699c): such a selector is found in a shorter push too, but
//! that is weaker evidence, since jump targets and small constants are pushed the same way, and
//! [`Presence::Shorter`] says so. Solidity's metadata trailer (CBOR, its length in the last two
//! bytes) is not code and is left out; a push cut short by the end of the code is ignored.

use std::collections::{BTreeMap, BTreeSet};

/// The values a runtime code pushes that can be a selector.
#[derive(Debug, Default)]
pub struct Pushes {
    /// Every PUSH4 operand.
    four: BTreeSet<[u8; 4]>,
    /// Every PUSH0..PUSH3 value, with the shortest push that carried it.
    short: BTreeMap<u32, u8>,
}

/// Where a selector occurs in the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// As a PUSH4 operand: how a dispatcher pushes a selector.
    Push4,
    /// Only as the value of a shorter push, PUSH`n` (the selector begins with zero bytes).
    Shorter(u8),
    /// Nowhere.
    Absent,
}

const PUSH0: u8 = 0x5f;
const PUSH1: u8 = 0x60;
const PUSH32: u8 = 0x7f;

/// Walks `code`'s opcodes (its metadata trailer left out) and collects what they push.
pub fn scan(code: &[u8]) -> Pushes {
    let code = &code[..code.len() - metadata_len(code)];
    let mut pushes = Pushes::default();
    let mut i = 0;
    while i < code.len() {
        let op = code[i];
        i += 1;
        if op == PUSH0 {
            pushes.short.entry(0).or_insert(0);
            continue;
        }
        if !(PUSH1..=PUSH32).contains(&op) {
            continue;
        }
        let n = usize::from(op - PUSH1) + 1;
        let Some(data) = code.get(i..i + n) else {
            break; // cut short by the end of the code: not a push the code can run
        };
        i += n;
        if n == 4 {
            pushes.four.insert([data[0], data[1], data[2], data[3]]);
        } else if n < 4 {
            let value = data.iter().fold(0u32, |v, b| v << 8 | u32::from(*b));
            let shortest = pushes.short.entry(value).or_insert(n as u8);
            *shortest = (*shortest).min(n as u8);
        }
    }
    pushes
}

impl Pushes {
    /// Where `selector` occurs: a PUSH4 operand, else (beginning with zero bytes) the value of
    /// a shorter push, else nowhere.
    pub fn find(&self, selector: [u8; 4]) -> Presence {
        if self.four.contains(&selector) {
            return Presence::Push4;
        }
        if selector[0] == 0
            && let Some(n) = self.short.get(&u32::from_be_bytes(selector))
        {
            return Presence::Shorter(*n);
        }
        Presence::Absent
    }

    /// Every PUSH4 operand, in order: the selectors of the code's functions among them (and its
    /// custom errors', interface ids, other 4-byte constants).
    pub fn push4(&self) -> &BTreeSet<[u8; 4]> {
        &self.four
    }
}

/// The length of Solidity's metadata trailer at the end of `code` (a CBOR map, then its length
/// in two bytes, big-endian), or 0 where the end does not look like one.
fn metadata_len(code: &[u8]) -> usize {
    let [.., hi, lo] = code else { return 0 };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let Some(start) = code.len().checked_sub(len + 2) else {
        return 0;
    };
    // A CBOR map of 1 to 23 entries (major type 5) opens Solidity's trailer.
    if len > 0 && (0xa1..=0xb7).contains(&code[start]) {
        len + 2
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(hex: &str) -> [u8; 4] {
        hex::decode(hex).unwrap().try_into().unwrap()
    }

    #[test]
    fn push4_operands_are_found_and_push_data_is_skipped() {
        // PUSH4 baa47694, then a PUSH32 whose data holds the bytes of PUSH4 deadbeef, then
        // PUSH2 0x699c, PUSH3 0xaddb62, PUSH0.
        let mut code = hex::decode("63baa47694").unwrap();
        code.push(PUSH32);
        let mut data = hex::decode("63deadbeef").unwrap();
        data.resize(32, 0x63);
        code.extend(data);
        code.extend(hex::decode("61699c62addb625f00").unwrap());
        let p = scan(&code);
        assert_eq!(p.find(sel("baa47694")), Presence::Push4);
        assert_eq!(p.find(sel("deadbeef")), Presence::Absent);
        assert_eq!(p.find(sel("0000699c")), Presence::Shorter(2));
        assert_eq!(p.find(sel("00addb62")), Presence::Shorter(3));
        assert_eq!(p.find(sel("00000000")), Presence::Shorter(0));
        // A short push's value is no selector that does not begin with zero bytes.
        assert_eq!(p.find(sel("699c0000")), Presence::Absent);
        assert_eq!(p.push4().len(), 1);
    }

    #[test]
    fn a_push_cut_short_by_the_end_is_ignored_and_nothing_panics() {
        let p = scan(&hex::decode("63baa4").unwrap());
        assert!(p.push4().is_empty());
        for len in 0..40 {
            let code: Vec<u8> = (0..len).map(|i| 0x60 + (i as u8 % 32)).collect();
            let _ = scan(&code);
        }
        assert!(scan(&[]).push4().is_empty());
        assert!(scan(&[0xa1, 0x00, 0x01]).push4().is_empty());
        assert!(scan(&[0xff, 0xff]).push4().is_empty());
    }

    #[test]
    fn the_metadata_trailer_is_not_code() {
        // PUSH4 baa47694 STOP, then a trailer: a1 65 "bzzr0" 63 11223344 (a PUSH4 if read as
        // code), and its length, 0x000c.
        let mut code = hex::decode("63baa4769400").unwrap();
        let trailer = hex::decode("a165627a7a72306311223344").unwrap();
        code.extend(&trailer);
        code.extend((trailer.len() as u16).to_be_bytes());
        let p = scan(&code);
        assert_eq!(p.find(sel("baa47694")), Presence::Push4);
        assert_eq!(p.find(sel("11223344")), Presence::Absent);
        assert_eq!(metadata_len(&code), trailer.len() + 2);
        // Where the end does not look like a trailer, all of it is code.
        assert_eq!(metadata_len(&hex::decode("6311223344").unwrap()), 0);
    }
}
