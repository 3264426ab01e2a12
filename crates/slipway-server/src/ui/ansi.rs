//! Log lines as HTML: escaped, with the ANSI colours tools print (SGR codes
//! 30–37, 90–97, bold, reset) turned into spans; other escapes are dropped.

pub fn to_html(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut open = false;
    let mut rest = line;
    while let Some(at) = rest.find('\u{1b}') {
        escape_into(&mut out, &rest[..at]);
        let after = &rest[at + 1..];
        let Some(body) = after.strip_prefix('[') else {
            rest = after;
            continue;
        };
        let end = body
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(body.len());
        if body[end..].starts_with('m') {
            if open {
                out.push_str("</span>");
                open = false;
            }
            if let Some(style) = style(&body[..end]) {
                out.push_str(&format!("<span style=\"{style}\">"));
                open = true;
            }
        }
        rest = body.get(end + 1..).unwrap_or("");
    }
    escape_into(&mut out, rest);
    if open {
        out.push_str("</span>");
    }
    out
}

const COLOURS: [&str; 8] = [
    "#5c6370", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#dcdfe4",
];

fn style(codes: &str) -> Option<String> {
    let mut parts = Vec::new();
    for code in codes.split(';').filter_map(|c| c.parse::<u8>().ok()) {
        match code {
            1 => parts.push("font-weight:bold".to_string()),
            30..=37 => parts.push(format!("color:{}", COLOURS[usize::from(code - 30)])),
            90..=97 => parts.push(format!("color:{}", COLOURS[usize::from(code - 90)])),
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join(";"))
}

pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::new();
    escape_into(&mut out, text);
    out
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn colours_become_spans_and_markup_is_escaped() {
        assert_eq!(
            to_html("\u{1b}[1;31merror\u{1b}[0m: <b>&"),
            "<span style=\"font-weight:bold;color:#e06c75\">error</span>: &lt;b&gt;&amp;"
        );
        assert_eq!(
            to_html("\u{1b}[2Kplain\u{1b}[32m ok"),
            "plain<span style=\"color:#98c379\"> ok</span>"
        );
    }
}
