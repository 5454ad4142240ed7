//! Tokenizer of the saga expression language: turns the source into tokens with byte offsets,
//! rejecting SpEL syntax the language leaves out with a message that names it.

/// One token and the bytes of the source it covers.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// The magnitude only: `9223372036854775808` is valid right after a unary minus.
    Int(u64),
    Float(f64),
    Str(String),
    Ident(String),
    /// `#root` or `#this` (the same object: there is no selection that would rebind `#this`).
    Root,
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Dot,
    SafeDot,
    Comma,
    Colon,
    Question,
    Elvis,
    EqEq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    AndAnd,
    OrOr,
}

/// A lexical error: the byte offset and what is wrong there.
pub(super) type LexError = (usize, String);

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(text.len(), |&(o, _)| o);
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let start = offset(i);
        let next = at(i + 1);
        let (tok, len) = match c {
            ' ' | '\t' | '\r' | '\n' => {
                i += 1;
                continue;
            }
            '0'..='9' => {
                let (tok, len) = number(&chars, i, text)?;
                (tok, len)
            }
            '\'' | '"' => {
                let (value, len) = string(&chars, i, c)
                    .ok_or_else(|| (start, format!("unterminated string starting with {c}")))?;
                (Tok::Str(value), len)
            }
            c if is_ident_start(c) => {
                let mut j = i + 1;
                while at(j).is_some_and(is_ident_continue) {
                    j += 1;
                }
                let name: String = chars
                    .get(i..j)
                    .unwrap_or_default()
                    .iter()
                    .map(|&(_, c)| c)
                    .collect();
                (Tok::Ident(name), j - i)
            }
            '#' => {
                let mut j = i + 1;
                while at(j).is_some_and(is_ident_continue) {
                    j += 1;
                }
                let name: String = chars
                    .get(i + 1..j)
                    .unwrap_or_default()
                    .iter()
                    .map(|&(_, c)| c)
                    .collect();
                match name.as_str() {
                    "root" | "this" => (Tok::Root, j - i),
                    "" if next == Some('{') => {
                        return Err((start, "templates (#{...}) are not supported".into()));
                    }
                    "" => return Err((start, "expected #root or #this after #".into())),
                    _ => {
                        return Err((
                            start,
                            format!(
                                "variables and functions (#{name}) are not supported: only #root and #this"
                            ),
                        ));
                    }
                }
            }
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            ',' => (Tok::Comma, 1),
            ':' => (Tok::Colon, 1),
            '.' => (Tok::Dot, 1),
            '?' => match next {
                Some('.') => (Tok::SafeDot, 2),
                Some(':') => (Tok::Elvis, 2),
                _ => (Tok::Question, 1),
            },
            '=' if next == Some('=') => (Tok::EqEq, 2),
            '=' => {
                return Err((
                    start,
                    "assignment (=) is not supported; compare with ==".into(),
                ));
            }
            '!' if next == Some('=') => (Tok::Ne, 2),
            '!' => (Tok::Bang, 1),
            '<' if next == Some('=') => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if next == Some('=') => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '+' | '-' if next == Some(c) => {
                return Err((
                    start,
                    format!("increment and decrement ({c}{c}) are not supported"),
                ));
            }
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '*' => (Tok::Star, 1),
            '/' => (Tok::Slash, 1),
            '%' => (Tok::Percent, 1),
            '&' if next == Some('&') => (Tok::AndAnd, 2),
            '|' if next == Some('|') => (Tok::OrOr, 2),
            '&' => {
                return Err((
                    start,
                    "bean references (&name) are not supported; logical and is && or and".into(),
                ));
            }
            '|' => {
                return Err((
                    start,
                    "a single | is not an operator; logical or is || or or".into(),
                ));
            }
            '@' => {
                return Err((start, "bean references (@name) are not supported".into()));
            }
            '^' => {
                return Err((
                    start,
                    "the power operator (^) and selection (.^[...]) are not supported".into(),
                ));
            }
            other => {
                return Err((start, format!("unexpected character {other:?}")));
            }
        };
        let end = offset(i + len);
        tokens.push(Token { tok, start, end });
        i += len;
    }
    Ok(tokens)
}

/// Lexes the number starting at char index `i`; returns the token and its length in chars.
fn number(chars: &[(usize, char)], i: usize, text: &str) -> Result<(Tok, usize), LexError> {
    let at = |k: usize| chars.get(k).map(|&(_, c)| c);
    let offset = |k: usize| chars.get(k).map_or(text.len(), |&(o, _)| o);
    let start = offset(i);
    let mut j = i;
    while at(j).is_some_and(|c| c.is_ascii_digit()) {
        j += 1;
    }
    let mut float = false;
    // `1.size()` stays an integer followed by a method call: a fraction needs a digit.
    if at(j) == Some('.') && at(j + 1).is_some_and(|c| c.is_ascii_digit()) {
        float = true;
        j += 1;
        while at(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
    }
    if matches!(at(j), Some('e' | 'E')) {
        let digits_at = if matches!(at(j + 1), Some('+' | '-')) {
            j + 2
        } else {
            j + 1
        };
        if at(digits_at).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            j = digits_at;
            while at(j).is_some_and(|c| c.is_ascii_digit()) {
                j += 1;
            }
        }
    }
    if at(j).is_some_and(is_ident_continue) {
        return Err((
            start,
            "number suffixes and hexadecimal literals (10L, 1.5d, 0xFF) are not supported".into(),
        ));
    }
    let literal = text.get(start..offset(j)).unwrap_or_default();
    let tok = if float {
        match literal.parse::<f64>() {
            Ok(value) if value.is_finite() => Tok::Float(value),
            _ => return Err((start, format!("number {literal} is out of range"))),
        }
    } else {
        match literal.parse::<u64>() {
            Ok(value) => Tok::Int(value),
            Err(_) => {
                return Err((
                    start,
                    format!("integer {literal} is out of range (64-bit signed integers)"),
                ));
            }
        }
    };
    Ok((tok, j - i))
}

/// Lexes the string quoted with `quote` at char index `i`: a doubled quote stands for one, as in
/// SpEL (no backslash escapes). Returns the value and the length in chars, None if unterminated.
fn string(chars: &[(usize, char)], i: usize, quote: char) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut j = i + 1;
    loop {
        let c = chars.get(j).map(|&(_, c)| c)?;
        if c == quote {
            if chars.get(j + 1).map(|&(_, c)| c) == Some(quote) {
                value.push(quote);
                j += 2;
                continue;
            }
            return Some((value, j + 1 - i));
        }
        value.push(c);
        j += 1;
    }
}
