//! A minimal, fully anchored regular expression engine for label matchers.
//!
//! Why not the `regex` crate: it adds hundreds of KB to every component, and matchers need
//! little. This one compiles to a Thompson NFA and runs a Pike-style simulation, so matching
//! takes O(pattern × text) steps with no catastrophic backtracking.
//!
//! Supported subset (RE2/Prometheus syntax):
//! - literals; `\` escapes any ASCII punctuation (`\.`, `\|`, `\\`), plus `\n`, `\t`, `\r`
//! - `.` (any character, newlines included)
//! - classes `[abc]`, `[a-z0-9_]`, negated `[^...]`, and `\d \w \s` (`\D \W \S`) in or out of them
//! - alternation `a|b`, groups `(...)` and `(?:...)`
//! - repetition `*`, `+`, `?` on any atom or group (lazy forms `*?` etc. are accepted; for a
//!   yes/no full match they mean the same)
//! - `^` and `$` (redundant, since matching is anchored at both ends anyway)
//!
//! Not supported, and rejected with an error rather than misread: counted repetition `{n,m}`,
//! flags such as `(?i)`, look-around, back-references, `\b`, Unicode classes `\p{..}`, POSIX
//! classes `[[:alpha:]]`.

/// A compiled pattern that must match the whole text (as Alertmanager's `=~` and `!~` do).
#[derive(Clone, Debug)]
pub struct Regex {
    prog: Vec<Inst>,
}

#[derive(Clone, Debug)]
enum Inst {
    Char(Class),
    Split(usize, usize),
    Jmp(usize),
    AtStart,
    AtEnd,
    Match,
}

#[derive(Clone, Debug)]
enum Class {
    Any,
    Lit(char),
    Set { negated: bool, items: Vec<Item> },
}

#[derive(Clone, Debug)]
enum Item {
    Range(char, char),
    Perl(char), // one of d w s D W S
}

#[derive(Debug)]
enum Node {
    Empty,
    Char(Class),
    AtStart,
    AtEnd,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Star(Box<Node>),
    Plus(Box<Node>),
    Quest(Box<Node>),
}

impl Regex {
    /// Compiles `pattern`, or explains what is wrong or unsupported in it.
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let mut p = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let node = p.alt().map_err(|e| format!("regex {pattern:?}: {e}"))?;
        if p.pos < p.chars.len() {
            return Err(format!("regex {pattern:?}: unmatched `)`"));
        }
        let mut prog = Vec::new();
        compile(&node, &mut prog);
        prog.push(Inst::Match);
        Ok(Regex { prog })
    }

    /// Whether the pattern matches all of `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        // `seen[pc] == step` marks pc as already in the list built for this step.
        let mut seen = vec![usize::MAX; n];
        let (mut cur, mut next) = (Vec::with_capacity(n), Vec::with_capacity(n));
        self.add(&mut cur, &mut seen, 0, 0, chars.len(), 0);
        for (i, &c) in chars.iter().enumerate() {
            next.clear();
            for &pc in &cur {
                if let Inst::Char(class) = &self.prog[pc] {
                    if class.matches(c) {
                        self.add(&mut next, &mut seen, pc + 1, i + 1, chars.len(), i + 1);
                    }
                }
            }
            std::mem::swap(&mut cur, &mut next);
            if cur.is_empty() {
                return false;
            }
        }
        cur.iter().any(|&pc| matches!(self.prog[pc], Inst::Match))
    }

    /// Adds `pc` and everything reachable from it without consuming input to `list`.
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        pc: usize,
        pos: usize,
        len: usize,
        step: usize,
    ) {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if seen[pc] == step {
                continue;
            }
            seen[pc] = step;
            match self.prog[pc] {
                Inst::Jmp(to) => stack.push(to),
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Inst::AtStart if pos == 0 => stack.push(pc + 1),
                Inst::AtEnd if pos == len => stack.push(pc + 1),
                Inst::AtStart | Inst::AtEnd => {}
                Inst::Char(_) | Inst::Match => list.push(pc),
            }
        }
    }
}

impl Class {
    fn matches(&self, c: char) -> bool {
        match self {
            Class::Any => true,
            Class::Lit(l) => *l == c,
            Class::Set { negated, items } => items.iter().any(|i| i.matches(c)) != *negated,
        }
    }
}

impl Item {
    fn matches(&self, c: char) -> bool {
        match *self {
            Item::Range(lo, hi) => lo <= c && c <= hi,
            Item::Perl(k) => {
                let hit = match k.to_ascii_lowercase() {
                    'd' => c.is_ascii_digit(),
                    'w' => c.is_ascii_alphanumeric() || c == '_',
                    _ => matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'),
                };
                hit != k.is_ascii_uppercase()
            }
        }
    }
}

fn compile(node: &Node, prog: &mut Vec<Inst>) {
    match node {
        Node::Empty => {}
        Node::Char(c) => prog.push(Inst::Char(c.clone())),
        Node::AtStart => prog.push(Inst::AtStart),
        Node::AtEnd => prog.push(Inst::AtEnd),
        Node::Concat(items) => items.iter().for_each(|n| compile(n, prog)),
        Node::Alt(branches) => {
            // split(b1, split(b2, ... bn)), each branch jumping to the common end.
            let mut jumps = Vec::new();
            for (i, b) in branches.iter().enumerate() {
                if i + 1 < branches.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(b, prog);
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    compile(b, prog);
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Star(n) => {
            let split = prog.len();
            prog.push(Inst::Split(0, 0));
            compile(n, prog);
            prog.push(Inst::Jmp(split));
            prog[split] = Inst::Split(split + 1, prog.len());
        }
        Node::Plus(n) => {
            let start = prog.len();
            compile(n, prog);
            prog.push(Inst::Split(start, prog.len() + 1));
        }
        Node::Quest(n) => {
            let split = prog.len();
            prog.push(Inst::Split(0, 0));
            compile(n, prog);
            prog[split] = Inst::Split(split + 1, prog.len());
        }
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<char, String> {
        let c = self.peek().ok_or("unexpected end of pattern")?;
        self.pos += 1;
        Ok(c)
    }

    fn alt(&mut self) -> Result<Node, String> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap()
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            items.push(self.repeat()?);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap(),
            _ => Node::Concat(items),
        })
    }

    fn repeat(&mut self) -> Result<Node, String> {
        let mut node = self.atom()?;
        while let Some(q @ ('*' | '+' | '?')) = self.peek() {
            self.pos += 1;
            if self.peek() == Some('?') {
                self.pos += 1; // lazy: same outcome for a full match
            }
            node = match q {
                '*' => Node::Star(Box::new(node)),
                '+' => Node::Plus(Box::new(node)),
                _ => Node::Quest(Box::new(node)),
            };
        }
        if self.peek() == Some('{') {
            return Err("counted repetition {n,m} is not supported".into());
        }
        Ok(node)
    }

    fn atom(&mut self) -> Result<Node, String> {
        Ok(match self.next()? {
            '(' => {
                if self.peek() == Some('?') {
                    if self.chars.get(self.pos + 1) != Some(&':') {
                        return Err("flags and look-around `(?...)` are not supported".into());
                    }
                    self.pos += 2;
                }
                let inner = self.alt()?;
                if self.peek() != Some(')') {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                inner
            }
            '[' => Node::Char(self.class()?),
            '.' => Node::Char(Class::Any),
            '^' => Node::AtStart,
            '$' => Node::AtEnd,
            '\\' => match self.escape()? {
                Item::Range(c, _) => Node::Char(Class::Lit(c)),
                perl => Node::Char(Class::Set {
                    negated: false,
                    items: vec![perl],
                }),
            },
            '*' | '+' | '?' => return Err("nothing to repeat".into()),
            '{' => return Err("counted repetition {n,m} is not supported".into()),
            c => Node::Char(Class::Lit(c)),
        })
    }

    /// After a `\`: a literal (as a one-char range) or a Perl class.
    fn escape(&mut self) -> Result<Item, String> {
        let c = self.next()?;
        Ok(match c {
            'd' | 'w' | 's' | 'D' | 'W' | 'S' => Item::Perl(c),
            'n' => Item::Range('\n', '\n'),
            't' => Item::Range('\t', '\t'),
            'r' => Item::Range('\r', '\r'),
            c if c.is_ascii_punctuation() => Item::Range(c, c),
            c => return Err(format!("escape `\\{c}` is not supported")),
        })
    }

    /// After a `[`: items up to the closing `]`.
    fn class(&mut self) -> Result<Class, String> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let c = self.next().map_err(|_| "missing `]`".to_string())?;
            let item = match c {
                ']' if !first => break,
                '[' if self.peek() == Some(':') => {
                    return Err("POSIX classes [[:name:]] are not supported".into())
                }
                '\\' => self.escape()?,
                c => Item::Range(c, c),
            };
            first = false;
            // `a-z` unless the `-` is last (`[a-]` means a or -).
            if let Item::Range(lo, _) = item {
                if self.peek() == Some('-')
                    && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']')
                {
                    self.pos += 1;
                    let hi = match self.next()? {
                        '\\' => match self.escape()? {
                            Item::Range(h, _) => h,
                            Item::Perl(_) => return Err("bad range in class".into()),
                        },
                        h => h,
                    };
                    if hi < lo {
                        return Err(format!("bad range {lo}-{hi} in class"));
                    }
                    items.push(Item::Range(lo, hi));
                    continue;
                }
            }
            items.push(item);
        }
        Ok(Class::Set { negated, items })
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).unwrap().is_match(t)
    }

    #[test]
    fn anchored_literals_and_alternation() {
        assert!(m("dev|test", "dev"));
        assert!(m("dev|test", "test"));
        assert!(!m("dev|test", "develop"));
        assert!(!m("dev|test", "mydev"));
        assert!(m("", ""));
        assert!(!m("", "x"));
        assert!(m("a|", ""));
        assert!(m("^prod$", "prod"));
    }

    #[test]
    fn repetition_and_classes() {
        assert!(m(".*", ""));
        assert!(m(".+", "x"));
        assert!(!m(".+", ""));
        assert!(m("db-[0-9]+", "db-42"));
        assert!(!m("db-[0-9]+", "db-"));
        assert!(m("db-\\d+\\.example\\.com", "db-1.example.com"));
        assert!(!m("db-\\d+\\.example\\.com", "db-1xexample.com"));
        assert!(m("colou?r", "color"));
        assert!(m("colou?r", "colour"));
        assert!(m("[^a-c]x", "dx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("[a-]+", "a-a"));
        assert!(m("[]a]", "]"));
        assert!(m("(ab)+c", "ababc"));
        assert!(m("(?:a|b)*", "abba"));
        assert!(m("(a*)*b", "aaab"));
        assert!(m(".*-(staging|dev)", "api-dev"));
        assert!(m("\\w+\\s\\W", "a_1 !"));
        assert!(m("é.", "éü"));
    }

    #[test]
    fn no_blowup() {
        let text = "a".repeat(2000);
        assert!(!m("(a*)*(a*)*b", &text));
    }

    #[test]
    fn rejects_unsupported() {
        for p in [
            "a{2}",
            "(?i)a",
            "(a",
            "a)",
            "*a",
            "[a",
            "\\b",
            "[[:alpha:]]",
            "[z-a]",
            "x\\",
        ] {
            assert!(Regex::new(p).is_err(), "{p}");
        }
    }
}
