//! `tocsin plugin test --profile`: where one plugin call's fuel goes, per function.
//!
//! How a profiled call counts. Its store's epoch deadline is put back to the current epoch after
//! every check (`UpdateDeadline::Continue(0)`), so the epoch callback ([`on_epoch`]) runs at every
//! check wasmtime compiles into the plugin (each function entry and each loop header), not once per
//! tick. There it reads the store's fuel. wasmtime keeps the running count in a register and writes
//! it back to the store only at calls, returns and traps, so the count the callback reads moves
//! only after one of those. When it has moved, the fuel it moved by was spent since the previous
//! check that saw a move, by the stack that check captured (between two checks that see no move
//! there was no call or return, so no other stack); the callback then captures the stack for the
//! next move. The call's last stretch goes to the last stack captured. So every unit of fuel the
//! call used is attributed, and a profile's total is the call's `fuel_used`. The one blur: when
//! several calls and returns come between two checks (a loop-free function returns and its caller
//! calls another before any loop), the caller's few instructions between them go to the earlier
//! stack.
//!
//! [`Profile`] is the result, pure data: fuel per call stack, per function (self and total), as a
//! `perf report`-like table and as folded stacks for flame graph tools.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use wasmtime::{FrameInfo, Store, StoreContextMut, Trap, UpdateDeadline, WasmBacktrace};

use super::host::HostState;

/// The frame name of fuel spent with no wasm frame on the stack.
pub const NO_FRAME: &str = "[no wasm frame]";

/// Fuel per call stack (outermost frame first): where a profiled call (or several, merged) spent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    stacks: BTreeMap<Vec<String>, u64>,
}

/// One function's share of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCost {
    pub name: String,
    /// Fuel spent in the function's own code.
    pub self_fuel: u64,
    /// Fuel spent while it was on the stack: its own and its callees' (once, however deep it recurs).
    pub total_fuel: u64,
}

/// A frame name that folded stacks can carry: no `;` (the frame separator), no line breaks, not empty.
fn clean(name: &str) -> String {
    if name.is_empty() {
        return "?".into();
    }
    name.chars()
        .map(|c| match c {
            ';' => ',',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

impl Profile {
    /// Adds `fuel` spent with `stack` (outermost frame first) on the stack.
    pub fn add(&mut self, stack: &[String], fuel: u64) {
        if fuel == 0 {
            return;
        }
        let stack: Vec<String> = if stack.is_empty() {
            vec![NO_FRAME.into()]
        } else {
            stack.iter().map(|f| clean(f)).collect()
        };
        let slot = self.stacks.entry(stack).or_default();
        *slot = slot.saturating_add(fuel);
    }

    /// Adds another profile's fuel to this one's (fixtures: the sum over the cases).
    pub fn merge(&mut self, other: &Profile) {
        for (stack, fuel) in &other.stacks {
            self.add(stack, *fuel);
        }
    }

    /// All the fuel in the profile.
    pub fn total(&self) -> u64 {
        self.stacks.values().fold(0, |a, b| a.saturating_add(*b))
    }

    /// Every function on some stack, most self fuel first (then most total fuel, then by name).
    pub fn functions(&self) -> Vec<FunctionCost> {
        let mut by_name: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (stack, fuel) in &self.stacks {
            if let Some(leaf) = stack.last() {
                let e = by_name.entry(leaf).or_default();
                e.0 = e.0.saturating_add(*fuel);
            }
            let distinct: BTreeSet<&str> = stack.iter().map(String::as_str).collect();
            for name in distinct {
                let e = by_name.entry(name).or_default();
                e.1 = e.1.saturating_add(*fuel);
            }
        }
        let mut out: Vec<FunctionCost> = by_name
            .into_iter()
            .map(|(name, (self_fuel, total_fuel))| FunctionCost {
                name: name.to_string(),
                self_fuel,
                total_fuel,
            })
            .collect();
        out.sort_by(|a, b| {
            (b.self_fuel, b.total_fuel)
                .cmp(&(a.self_fuel, a.total_fuel))
                .then_with(|| a.name.cmp(&b.name))
        });
        out
    }

    /// Folded stacks: one line per stack, `outer;inner;leaf FUEL`, the format inferno,
    /// flamegraph.pl and speedscope read.
    pub fn folded(&self) -> String {
        self.stacks
            .iter()
            .map(|(stack, fuel)| format!("{} {fuel}\n", stack.join(";")))
            .collect()
    }

    /// Reads folded stacks back (the inverse of [`Profile::folded`]).
    pub fn from_folded(text: &str) -> Result<Profile, String> {
        let mut p = Profile::default();
        for (i, line) in text.lines().enumerate() {
            let (stack, fuel) = line
                .rsplit_once(' ')
                .ok_or_else(|| format!("line {}: no count", i + 1))?;
            let fuel: u64 = fuel
                .parse()
                .map_err(|e| format!("line {}: count {fuel:?}: {e}", i + 1))?;
            let frames: Vec<String> = stack.split(';').map(str::to_string).collect();
            p.add(&frames, fuel);
        }
        Ok(p)
    }

    /// A `perf report`-like table of the `top` functions by self fuel; one more row sums the rest,
    /// so the self columns add up to the whole.
    pub fn table(&self, top: usize) -> String {
        let total = self.total();
        let pct = |n: u64| {
            if total == 0 {
                0.0
            } else {
                n as f64 * 100.0 / total as f64
            }
        };
        let mut out = format!(
            "{:>12} {:>7} {:>12} {:>7}  function\n",
            "self fuel", "self", "total fuel", "total"
        );
        let functions = self.functions();
        for f in functions.iter().take(top) {
            out.push_str(&format!(
                "{:>12} {:>6.1}% {:>12} {:>6.1}%  {}\n",
                f.self_fuel,
                pct(f.self_fuel),
                f.total_fuel,
                pct(f.total_fuel),
                f.name
            ));
        }
        if functions.len() > top {
            let rest = &functions[top..];
            let fuel = rest.iter().fold(0u64, |a, f| a.saturating_add(f.self_fuel));
            out.push_str(&format!(
                "{:>12} {:>6.1}% {:>12} {:>7}  ({} more functions)\n",
                fuel,
                pct(fuel),
                "",
                "",
                rest.len()
            ));
        }
        out
    }
}

/// A profiled call's counting state, in its store's data ([`HostState::sampler`]).
#[derive(Debug, Default)]
pub struct Sampler {
    /// Counting: during a call, not while instantiating.
    armed: bool,
    /// Fuel left at the last check that saw the count move (at first, at the call's start).
    fuel_left: u64,
    /// The stack that check captured, outermost first, as indexes into `names`.
    stack: Option<Vec<u32>>,
    /// Frame names, and their indexes by wasmtime's name of the frame (mangled, or module and index).
    names: Vec<String>,
    ids: HashMap<String, u32>,
    stacks: HashMap<Vec<u32>, u64>,
}

impl Sampler {
    fn intern(&mut self, frame: &FrameInfo) -> u32 {
        let key = match frame.func_name() {
            Some(raw) => raw.to_string(),
            None => format!(
                "{}!func[{}]",
                frame.module().name().unwrap_or("wasm"),
                frame.func_index()
            ),
        };
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        // `{:#}`: Rust names without their hash; other names come back as they are.
        let name = format!("{:#}", rustc_demangle::demangle(&key));
        let id = self.names.len() as u32;
        self.names.push(name);
        self.ids.insert(key, id);
        id
    }

    /// The count moved to `fuel_left`: the fuel since the last move goes to the stack captured then
    /// (or, at the first check, to this one), and `frames` (innermost first) is the stack from now on.
    fn moved(&mut self, fuel_left: u64, frames: &[FrameInfo]) {
        let now: Vec<u32> = frames.iter().rev().map(|f| self.intern(f)).collect();
        let spent = self.fuel_left.saturating_sub(fuel_left);
        let to = self.stack.take().unwrap_or_else(|| now.clone());
        if spent > 0 {
            *self.stacks.entry(to).or_default() += spent;
        }
        self.fuel_left = fuel_left;
        self.stack = Some(now);
    }

    /// The call ended with `fuel_left`: its last stretch goes to the last stack, and the profile is
    /// handed out.
    fn finish(&mut self, fuel_left: u64) -> Profile {
        self.armed = false;
        let spent = self.fuel_left.saturating_sub(fuel_left);
        if spent > 0 {
            let last = self.stack.take().unwrap_or_default();
            *self.stacks.entry(last).or_default() += spent;
        }
        self.stack = None;
        let mut profile = Profile::default();
        for (stack, fuel) in self.stacks.drain() {
            let frames: Vec<String> = stack
                .iter()
                .map(|i| self.names[*i as usize].clone())
                .collect();
            profile.add(&frames, fuel);
        }
        profile
    }
}

/// The store's epoch callback: traps past the call's wall-clock deadline; otherwise, in a profiled
/// call, counts (see the module's documentation) and asks to be called at the very next check.
pub(super) fn on_epoch(
    mut ctx: StoreContextMut<'_, HostState>,
) -> wasmtime::Result<UpdateDeadline> {
    if Instant::now() >= ctx.data().deadline {
        return Err(Trap::Interrupt.into());
    }
    if !ctx.data().sampler.as_ref().is_some_and(|s| s.armed) {
        return Ok(UpdateDeadline::Continue(1));
    }
    let fuel_left = ctx.get_fuel().unwrap_or(0);
    let moved = ctx
        .data()
        .sampler
        .as_ref()
        .is_some_and(|s| s.stack.is_none() || s.fuel_left != fuel_left);
    if moved {
        let trace = WasmBacktrace::force_capture(&ctx);
        if let Some(s) = ctx.data_mut().sampler.as_mut() {
            s.moved(fuel_left, trace.frames());
        }
    }
    Ok(UpdateDeadline::Continue(0))
}

/// Before a call: starts counting in a profiled store (the first check calls back at once), else
/// sets the usual deadline of one tick.
pub(super) fn arm(store: &mut Store<HostState>) {
    let fuel_left = store.get_fuel().unwrap_or(0);
    let profiling = match store.data_mut().sampler.as_mut() {
        Some(s) => {
            s.armed = true;
            s.fuel_left = fuel_left;
            s.stack = None;
            true
        }
        None => false,
    };
    store.set_epoch_deadline(if profiling { 0 } else { 1 });
}

/// After a call: the profile of a profiled store's call.
pub(super) fn finish(store: &mut Store<HostState>) -> Option<Profile> {
    let fuel_left = store.get_fuel().unwrap_or(0);
    Some(store.data_mut().sampler.as_mut()?.finish(fuel_left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stack(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn example() -> Profile {
        let mut p = Profile::default();
        p.add(&stack(&["handle", "burn"]), 900);
        p.add(&stack(&["handle", "tally", "step"]), 60);
        p.add(&stack(&["handle", "tally"]), 30);
        p.add(&stack(&["handle"]), 10);
        p
    }

    #[test]
    fn self_is_the_leaf_and_total_every_frame() {
        let f = example().functions();
        let get = |n: &str| f.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(f[0].name, "burn");
        assert_eq!((get("burn").self_fuel, get("burn").total_fuel), (900, 900));
        assert_eq!((get("tally").self_fuel, get("tally").total_fuel), (30, 90));
        assert_eq!((get("step").self_fuel, get("step").total_fuel), (60, 60));
        assert_eq!(
            (get("handle").self_fuel, get("handle").total_fuel),
            (10, 1000)
        );
    }

    #[test]
    fn recursion_counts_once_in_total() {
        let mut p = Profile::default();
        p.add(&stack(&["f", "f", "f"]), 5);
        p.add(&stack(&["f", "g"]), 3);
        let f = p.functions();
        assert_eq!(
            f[0],
            FunctionCost {
                name: "f".into(),
                self_fuel: 5,
                total_fuel: 8
            }
        );
    }

    #[test]
    fn the_table_names_the_top_and_sums_the_rest() {
        let t = example().table(2);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("self fuel"), "{t}");
        assert!(
            lines[1].ends_with("  burn") && lines[1].contains("90.0%"),
            "{t}"
        );
        assert!(lines[2].ends_with("  step"), "{t}");
        assert!(lines[3].contains("(2 more functions)"), "{t}");
        assert!(lines[3].trim_start().starts_with("40 "), "{t}");
        assert_eq!(lines.len(), 4, "{t}");
        assert!(!example().table(10).contains("more functions"));
    }

    #[test]
    fn names_are_made_safe_for_folded_stacks() {
        let mut p = Profile::default();
        p.add(&stack(&["<[u8; 4] as X>::f", "a\nb", ""]), 7);
        p.add(&[], 2);
        assert_eq!(
            p.folded(),
            format!("<[u8, 4] as X>::f;a b;? 7\n{NO_FRAME} 2\n")
        );
        assert!(Profile::from_folded("a;b\n").is_err());
        assert!(Profile::from_folded("a;b x\n").is_err());
    }

    #[test]
    fn rust_names_are_demangled_without_their_hash() {
        let d = format!(
            "{:#}",
            rustc_demangle::demangle("_ZN8hot_spot4burn17h6df0d77455f86519E")
        );
        assert_eq!(d, "hot_spot::burn");
        assert_eq!(
            format!("{:#}", rustc_demangle::demangle("PyEval")),
            "PyEval"
        );
    }

    fn arb_profile() -> impl Strategy<Value = Profile> {
        let frame = prop::sample::select(vec!["a", "b", "c", "d e", "f;g", "h"]);
        let stack = prop::collection::vec(frame, 0..6);
        prop::collection::vec((stack, 0u64..1_000_000), 0..20).prop_map(|entries| {
            let mut p = Profile::default();
            for (s, fuel) in entries {
                let s: Vec<String> = s.into_iter().map(str::to_string).collect();
                p.add(&s, fuel);
            }
            p
        })
    }

    proptest! {
        #[test]
        fn self_fuel_sums_to_the_total_and_total_is_at_least_self(p in arb_profile()) {
            let f = p.functions();
            let self_sum: u64 = f.iter().map(|c| c.self_fuel).sum();
            prop_assert_eq!(self_sum, p.total());
            for c in &f {
                prop_assert!(c.total_fuel >= c.self_fuel);
                prop_assert!(c.total_fuel <= p.total());
            }
            for w in f.windows(2) {
                prop_assert!(w[0].self_fuel >= w[1].self_fuel);
            }
        }

        #[test]
        fn folded_stacks_read_back_the_same(p in arb_profile()) {
            let text = p.folded();
            prop_assert_eq!(Profile::from_folded(&text).unwrap(), p.clone());
            let sum: u64 = text
                .lines()
                .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
                .sum();
            prop_assert_eq!(sum, p.total());
        }

        #[test]
        fn merging_adds_up(a in arb_profile(), b in arb_profile()) {
            let mut m = a.clone();
            m.merge(&b);
            prop_assert_eq!(m.total(), a.total() + b.total());
            let mut other_way = b.clone();
            other_way.merge(&a);
            prop_assert_eq!(m, other_way);
        }

        #[test]
        fn table_self_column_adds_up(p in arb_profile(), top in 0usize..8) {
            let t = p.table(top);
            let sum: u64 = t
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
                .sum();
            prop_assert_eq!(sum, p.total());
        }
    }
}
