//! Rules for text that Kassa shows to people (product names, descriptions,
//! categories, e-mail addresses, operator reasons): beyond control
//! characters, Unicode's bidirectional controls are refused, because they
//! reorder what a reader sees ("Trojan Source", CVE-2021-42574) — a product
//! named `Lamp\u{202E}gpj.exe` reads as `Lampexe.jpg`.

/// The Unicode bidirectional formatting characters: the embeddings and
/// overrides U+202A–U+202E, the isolates U+2066–U+2069, and the implicit
/// marks LRM (U+200E), RLM (U+200F) and ALM (U+061C).
pub const BIDI_CONTROLS: [char; 12] = [
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    '\u{200E}', '\u{200F}', '\u{061C}',
];

/// Whether `c` is one of the [`BIDI_CONTROLS`].
pub fn is_bidi_control(c: char) -> bool {
    BIDI_CONTROLS.contains(&c)
}

/// Refuses text holding a bidirectional control character, naming the
/// first one found so the sender can find it.
pub fn reject_bidi_controls(value: &str) -> Result<(), String> {
    match value.chars().find(|&c| is_bidi_control(c)) {
        Some(c) => {
            Err(format!("must not contain Unicode bidirectional control characters (found U+{:04X})", u32::from(c)))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bidi_control_is_refused_and_ordinary_text_is_not() {
        for c in BIDI_CONTROLS {
            let text = format!("Lamp{c}gpj.exe");
            let message = reject_bidi_controls(&text).expect_err("refused");
            assert!(message.contains(&format!("U+{:04X}", u32::from(c))), "{message}");
        }
        for fine in ["Desk lamp", "Schreibtischlampe für 20 €", "مصباح مكتب", "台灯", "Zero\u{200B}width space"]
        {
            assert_eq!(reject_bidi_controls(fine), Ok(()), "{fine:?}");
        }
    }
}
