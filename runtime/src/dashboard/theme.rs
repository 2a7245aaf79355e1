//! The colour themes: `assets/theme.js` (the stored light / dark choice,
//! applied before the first paint) and `assets/theme.css`, the colours
//! derived from the configured accent so that it stays readable in both
//! palettes of `app.css`.
//!
//! The accent is used three ways: as a background (buttons, with
//! `--on-accent` text: white or black, whichever contrasts more, which is
//! always at least 4.58:1), and as text or a mark on the page
//! (`--accent-ink-light` / `--accent-ink-dark`: the accent darkened or
//! lightened just enough to reach 4.5:1 on every background of that theme).

use axum::http::HeaderMap;
use axum::response::Response;

/// `GET {prefix}/assets/theme.js`
pub(crate) async fn theme_js(headers: HeaderMap) -> Response {
    super::pages::asset(
        &headers,
        "text/javascript; charset=utf-8",
        THEME_JS.to_owned(),
    )
}

const THEME_JS: &str = include_str!("../../assets/theme.js");

/// The backgrounds text sits on in the light palette of `app.css`
/// (`--bg`, `--surface`, `--row-selected`); the unit tests check that they
/// are the stylesheet's.
pub(crate) const LIGHT_BACKGROUNDS: [&str; 3] = ["#f9fafb", "#ffffff", "#eef2ff"];
/// The same in the dark palette.
pub(crate) const DARK_BACKGROUNDS: [&str; 3] = ["#111827", "#1f2937", "#253247"];

/// The contrast every text colour reaches: WCAG 2 AA for body text.
pub(crate) const MIN_CONTRAST: f64 = 4.5;

/// `assets/theme.css` for `accent` (`#rgb` or `#rrggbb`, already checked;
/// anything else falls back to the default blue).
pub(crate) fn css(accent: &str) -> String {
    let colour = Rgb::parse(accent).unwrap_or(Rgb(0x25, 0x63, 0xeb));
    let on = on_accent(colour);
    let light = ink(colour, &LIGHT_BACKGROUNDS, Rgb(0, 0, 0));
    let dark = ink(colour, &DARK_BACKGROUNDS, Rgb(0xff, 0xff, 0xff));
    format!(
        ":root {{ --accent: {colour}; --on-accent: {on}; \
         --accent-ink-light: {light}; --accent-ink-dark: {dark}; }}\n"
    )
}

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rgb` or `#rrggbb`.
    pub(crate) fn parse(text: &str) -> Option<Rgb> {
        let hex = text.strip_prefix('#')?;
        let digit = |i: usize| u8::from_str_radix(hex.get(i..i + 1)?, 16).ok();
        let pair = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
        match hex.len() {
            3 => Some(Rgb(digit(0)? * 17, digit(1)? * 17, digit(2)? * 17)),
            6 => Some(Rgb(pair(0)?, pair(2)?, pair(4)?)),
            _ => None,
        }
    }

    /// WCAG 2 relative luminance.
    pub(crate) fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.0) + 0.7152 * channel(self.1) + 0.0722 * channel(self.2)
    }

    /// `self` moved `t` (0 to 1) of the way towards `other`.
    fn mix(self, other: Rgb, t: f64) -> Rgb {
        let m = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
        Rgb(m(self.0, other.0), m(self.1, other.1), m(self.2, other.2))
    }
}

impl std::fmt::Display for Rgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// WCAG 2 contrast ratio of two colours (1 to 21).
pub(crate) fn contrast(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    let (hi, lo) = if la >= lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// White or black, whichever reads better on `accent`.
fn on_accent(accent: Rgb) -> Rgb {
    let (white, black) = (Rgb(0xff, 0xff, 0xff), Rgb(0, 0, 0));
    if contrast(accent, white) >= contrast(accent, black) {
        white
    } else {
        black
    }
}

/// `accent`, moved towards `toward` (black on light backgrounds, white on
/// dark ones) in steps of 2 % until it reaches [`MIN_CONTRAST`] on every
/// one of `backgrounds`.
fn ink(accent: Rgb, backgrounds: &[&str], toward: Rgb) -> Rgb {
    let backgrounds: Vec<Rgb> = backgrounds.iter().filter_map(|b| Rgb::parse(b)).collect();
    let readable = |c: Rgb| backgrounds.iter().all(|b| contrast(c, *b) >= MIN_CONTRAST);
    (0..=50)
        .map(|step| accent.mix(toward, f64::from(step) / 50.0))
        .find(|c| readable(*c))
        .unwrap_or(toward)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_CSS: &str = include_str!("../../assets/app.css");

    /// The custom properties declared in the first block of `css` that
    /// starts with `selector`, with literal colours only.
    fn palette(css: &str, selector: &str) -> Vec<(String, Rgb)> {
        let start = css
            .find(selector)
            .unwrap_or_else(|| panic!("app.css has no `{selector}`"));
        let block = &css[start..];
        let open = block.find('{').unwrap();
        let close = block.find('}').unwrap();
        block[open + 1..close]
            .split(';')
            .filter_map(|decl| {
                let (name, value) = decl.split_once(':')?;
                let name = name.trim();
                Some((
                    name.strip_prefix("--")?.to_owned(),
                    Rgb::parse(value.trim())?,
                ))
            })
            .collect()
    }

    fn get(palette: &[(String, Rgb)], name: &str) -> Rgb {
        palette
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no --{name} in the palette"))
            .1
    }

    fn light() -> Vec<(String, Rgb)> {
        palette(APP_CSS, ":root, :root[data-theme=\"light\"]")
    }

    fn dark_by_media() -> Vec<(String, Rgb)> {
        palette(APP_CSS, ":root:not([data-theme=\"light\"])")
    }

    fn dark_by_choice() -> Vec<(String, Rgb)> {
        palette(APP_CSS, ":root[data-theme=\"dark\"]")
    }

    /// Text colours, each on the backgrounds it is shown on.
    const TEXT_ON_BACKGROUNDS: &[(&str, &[&str])] = &[
        ("text", &["bg", "surface", "row-selected"]),
        ("text-2", &["bg", "surface", "row-selected", "paused-bg"]),
        ("label", &["bg", "surface", "row-selected"]),
        ("muted", &["bg", "surface", "row-selected"]),
        (
            "link",
            &[
                "bg",
                "surface",
                "row-selected",
                "flash-ok-bg",
                "flash-error-bg",
                "flash-confirm-bg",
            ],
        ),
        ("ok", &["bg", "surface", "row-selected"]),
        ("danger", &["bg", "surface", "row-selected"]),
        ("warn", &["bg", "surface", "row-selected"]),
        ("warn-2", &["bg", "surface", "row-selected"]),
        ("on-danger", &["danger-bg"]),
        ("flash-error-text", &["flash-error-bg"]),
        ("text", &["flash-ok-bg", "flash-confirm-bg"]),
    ];

    /// Marks that only need to stand out from their background (WCAG
    /// 1.4.11, 3:1): the focus ring, the failed bars of the chart.
    const MARKS_ON_BACKGROUNDS: &[(&str, &[&str])] = &[
        ("focus", &["bg", "surface", "row-selected"]),
        ("bar-failed", &["surface"]),
    ];

    fn check(name: &str, palette: &[(String, Rgb)]) -> Vec<String> {
        let mut failures = Vec::new();
        for (pairs, min) in [
            (TEXT_ON_BACKGROUNDS, MIN_CONTRAST),
            (MARKS_ON_BACKGROUNDS, 3.0),
        ] {
            for (fg, bgs) in pairs {
                for bg in *bgs {
                    let ratio = contrast(get(palette, fg), get(palette, bg));
                    println!("{name:6} --{fg:18} on --{bg:16} {ratio:5.2}:1");
                    if ratio < min {
                        failures.push(format!("{name}: --{fg} on --{bg} is {ratio:.2}:1 < {min}"));
                    }
                }
            }
        }
        failures
    }

    #[test]
    fn every_text_colour_reaches_aa_in_both_palettes() {
        let mut failures = check("light", &light());
        failures.extend(check("dark", &dark_by_media()));
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn the_dark_palette_is_the_same_by_media_query_and_by_choice() {
        let (media, choice) = (dark_by_media(), dark_by_choice());
        assert!(media.len() >= 20, "{media:?}");
        assert_eq!(media, choice, "the two dark blocks of app.css differ");
        let light = light();
        for (name, _) in &media {
            assert!(
                light.iter().any(|(n, _)| n == name),
                "--{name} is dark only: the light palette must set it too"
            );
        }
    }

    #[test]
    fn the_backgrounds_the_accent_is_checked_on_are_the_stylesheets() {
        for (constants, palette) in [
            (LIGHT_BACKGROUNDS, light()),
            (DARK_BACKGROUNDS, dark_by_media()),
        ] {
            let css: Vec<Rgb> = ["bg", "surface", "row-selected"]
                .iter()
                .map(|n| get(&palette, n))
                .collect();
            let ours: Vec<Rgb> = constants.iter().map(|c| Rgb::parse(c).unwrap()).collect();
            assert_eq!(ours, css);
        }
    }

    #[test]
    fn the_body_is_dark_in_dark_and_light_in_light() {
        assert!(get(&light(), "bg").luminance() > 0.8);
        assert!(get(&dark_by_media(), "bg").luminance() < 0.05);
    }

    /// Any accent, however pale or dark, gives readable ink in both themes
    /// and readable text on accent buttons.
    #[test]
    fn any_accent_is_made_readable() {
        let accents = [
            "#2563eb", "#f06824", "#fff", "#000", "#ff0", "#0f0", "#00f", "#f0f", "#777777",
            "#1f2937", "#fde047", "#7c3aed", "#dc2626", "#0e7490",
        ];
        for accent in accents {
            let colour = Rgb::parse(accent).unwrap();
            let on = on_accent(colour);
            assert!(
                contrast(colour, on) >= 4.58 - 1e-9,
                "{accent}: on-accent {on}"
            );
            for (backgrounds, toward) in [
                (LIGHT_BACKGROUNDS, Rgb(0, 0, 0)),
                (DARK_BACKGROUNDS, Rgb(255, 255, 255)),
            ] {
                let ink = ink(colour, &backgrounds, toward);
                for bg in backgrounds {
                    let ratio = contrast(ink, Rgb::parse(bg).unwrap());
                    assert!(
                        ratio >= MIN_CONTRAST,
                        "{accent}: ink {ink} on {bg} is {ratio:.2}"
                    );
                }
            }
        }
        // A readable accent is kept as it is.
        assert_eq!(
            ink(
                Rgb::parse("#2563eb").unwrap(),
                &LIGHT_BACKGROUNDS,
                Rgb(0, 0, 0)
            ),
            Rgb::parse("#2563eb").unwrap()
        );
        let css = css("#f06824");
        assert!(css.contains("--accent: #f06824;"), "{css}");
        assert!(css.contains("--on-accent: #000000;"), "{css}");
    }

    #[test]
    fn parse_and_contrast_match_wcag() {
        assert_eq!(Rgb::parse("#abc"), Some(Rgb(0xaa, 0xbb, 0xcc)));
        assert_eq!(Rgb::parse("#A0b1C2"), Some(Rgb(0xa0, 0xb1, 0xc2)));
        for bad in ["", "#", "#12", "#1234", "#gggggg", "123456", "#12345é"] {
            assert_eq!(Rgb::parse(bad), None, "{bad}");
        }
        let ratio = contrast(Rgb(0, 0, 0), Rgb(255, 255, 255));
        assert!((ratio - 21.0).abs() < 1e-9);
        // #767676 on white: the well-known 4.54:1.
        let grey = contrast(Rgb::parse("#767676").unwrap(), Rgb(255, 255, 255));
        assert!((grey - 4.54).abs() < 0.01, "{grey}");
    }
}
