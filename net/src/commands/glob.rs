//! Redis's glob matcher (`stringmatchlen` in util.c, Redis 7.0), byte for byte: `*`, `?`,
//! `[...]` with `^` negation, ranges and `\` escapes, optional ASCII case folding.
//!
//! It mirrors the C code's quirks on purpose: a read one past the pattern's end sees the NUL
//! terminator, and range bounds compare as signed `char`s. The one departure: recursion on `*`
//! stops at a nesting depth of [`GLOB_NESTING_MAX`] (as Redis 7.2 does), so a hostile pattern
//! cannot exhaust the shard's stack.

/// Most nested `*` recursions before a pattern is declared not to match.
pub const GLOB_NESTING_MAX: usize = 1000;

/// True when `s` matches the glob `pattern` (case-insensitively when `nocase`).
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, s, nocase, &mut skip_longer, 0)
}

/// KEYS / SCAN MATCH semantics: Redis skips matching altogether for the pattern `*`, so it
/// also returns the empty key (which `glob_match("*", "")` does not match).
pub fn keys_pattern_match(pattern: &[u8], key: &[u8]) -> bool {
    pattern == b"*" || glob_match(pattern, key, false)
}

fn lower(c: i32) -> i32 {
    if (b'A' as i32..=b'Z' as i32).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// `char` as the C code sees it on x86: signed.
fn sc(b: u8) -> i32 {
    b as i8 as i32
}

fn match_impl(pat: &[u8], s: &[u8], nocase: bool, skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > GLOB_NESTING_MAX {
        return false;
    }
    // `p` indexes the pattern; reading at `p == pat.len()` yields the NUL terminator.
    let at = |i: usize| -> u8 { pat.get(i).copied().unwrap_or(0) };
    let mut p = 0usize;
    let mut plen = pat.len();
    let mut si = 0usize;
    let mut slen = s.len();
    while plen > 0 && slen > 0 {
        match at(p) {
            b'*' => {
                while plen > 0 && at(p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if match_impl(
                        &pat[p + 1..p + plen],
                        &s[si..si + slen],
                        nocase,
                        skip_longer,
                        nesting + 1,
                    ) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                si += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = at(p) == b'^';
                if not {
                    p += 1;
                    plen -= 1;
                }
                let mut matched = false;
                let c0 = s[si];
                loop {
                    if at(p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if at(p) == c0 {
                            matched = true;
                        }
                    } else if at(p) == b']' {
                        break;
                    } else if plen == 0 {
                        p -= 1;
                        plen += 1;
                        break;
                    } else if plen >= 3 && at(p + 1) == b'-' {
                        let mut start = sc(at(p));
                        let mut end = sc(at(p + 2));
                        let mut c = sc(c0);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = lower(start);
                            end = lower(end);
                            c = lower(c);
                        }
                        p += 2;
                        plen -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if !nocase {
                        if at(p) == c0 {
                            matched = true;
                        }
                    } else if lower(sc(at(p))) == lower(sc(c0)) {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
            first => {
                let mut pc = first;
                if first == b'\\' && plen >= 2 {
                    p += 1;
                    plen -= 1;
                    pc = at(p);
                }
                let equal = if nocase {
                    lower(sc(pc)) == lower(sc(s[si]))
                } else {
                    pc == s[si]
                };
                if !equal {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen -= 1;
        if slen == 0 {
            while at(p) == b'*' {
                p += 1;
                plen = plen.wrapping_sub(1);
            }
            break;
        }
    }
    plen == 0 && slen == 0
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn matches_like_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", false), // KEYS and SCAN special-case "*"; see keys_pattern_match
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a*", "a", true),
            ("a*b", "ab", true),
            ("a*b", "acb", true),
            ("a*b", "acbd", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("[", "[", false),
            ("[a", "a", true),
            ("[]", "]", false),
            ("\\", "\\", true),
            ("a\\", "a\\", true),
            ("[\\]]", "]", true),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("**", "x", true),
            ("a**", "a", true),
            ("x[", "x", false),
            ("[a-]", "-", false),
            ("[a-]", "a", true),
            ("[a-]", "]", true),
            ("[a-", "a", true),
            ("a[", "a", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(
                glob_match(p.as_bytes(), s.as_bytes(), false),
                *want,
                "{p:?} vs {s:?}"
            );
        }
        assert!(super::keys_pattern_match(b"*", b""));
        assert!(glob_match(b"HeLLo", b"hello", true));
        assert!(!glob_match(b"HeLLo", b"hello", false));
        assert!(glob_match(b"[A-C]x", b"bx", true));
        // Signed-char ranges: 0xff sorts below 'a'.
        assert!(!glob_match(b"[a-\xff]", b"b", false));
        assert!(glob_match(b"[a-\xff]", b"\x00", false));
    }

    #[test]
    fn deep_star_patterns_do_not_overflow_the_stack() {
        let pattern = "*a".repeat(50_000);
        assert!(!glob_match(
            pattern.as_bytes(),
            "b".repeat(10).as_bytes(),
            false
        ));
    }
}
