package plugin

import (
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"
)

// defaultWidth is the width output is fitted to when it is not a terminal.
const defaultWidth = 80

// ANSI colours.
const (
	red    = "31"
	green  = "32"
	yellow = "33"
	cyan   = "36"
	bold   = "1"
	dim    = "2"
)

// style is how output is decorated: colours only on a terminal, and the
// width lines are fitted to.
type style struct {
	color bool
	width int
}

// styleFor picks the style for out: colours when out is a terminal and
// NO_COLOR is not set (https://no-color.org), width of the terminal or 80.
func styleFor(out io.Writer, getenv func(string) string) style {
	s := style{width: defaultWidth}
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return s
	}
	s.color = getenv("NO_COLOR") == ""
	if w, _, err := term.GetSize(int(f.Fd())); err == nil && w >= 40 {
		s.width = w
	}
	return s
}

// paint wraps text in an ANSI colour when colours are on.
func (s style) paint(code, text string) string {
	if !s.color || code == "" || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// phaseColor is the colour a phase is shown in.
func phaseColor(phase string) string {
	switch phase {
	case "Succeeded", "Initialized":
		return green
	case "Failed", "Terminating":
		return red
	case "":
		return ""
	}
	return yellow
}

// verdictColor is the colour a metric verdict is shown in: red for those
// that count as a failed check (Fail, and Error: an answer Sluice did not
// get never passes), yellow for those that hold the step or are not known.
func verdictColor(v string) string {
	switch v {
	case "Pass":
		return green
	case "Fail", "Error":
		return red
	case "":
		return ""
	}
	return yellow
}

// truncate cuts s to at most n runes, marking the cut with "...".
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 3 {
		return string([]rune(s)[:max(n, 0)])
	}
	return string([]rune(s)[:n-3]) + "..."
}

// cell is one table cell: its text and the colour it is painted in.
type cell struct {
	text  string
	color string
}

// table is rows of cells printed in aligned columns; the last column is cut
// so that every line fits the style's width.
type table struct {
	indent string
	header []string
	rows   [][]cell
}

func (t *table) add(cells ...cell) { t.rows = append(t.rows, cells) }

// plain makes uncoloured cells.
func plain(texts ...string) []cell {
	out := make([]cell, len(texts))
	for i, s := range texts {
		out[i] = cell{text: s}
	}
	return out
}

// write prints the table. Colour codes are added after padding, so they do
// not upset the alignment.
func (t *table) write(w io.Writer, s style) {
	n := len(t.header)
	widths := make([]int, n)
	for i, h := range t.header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i := 0; i < n && i < len(r); i++ {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[i].text))
		}
	}
	const gap = 2
	used := len(t.indent)
	for i := 0; i < n-1; i++ {
		used += widths[i] + gap
	}
	last := max(s.width-used, 10)
	line := func(cells []cell, header bool) {
		var b strings.Builder
		b.WriteString(t.indent)
		for i := 0; i < n; i++ {
			var c cell
			if i < len(cells) {
				c = cells[i]
			}
			text := c.text
			if i == n-1 {
				text = truncate(text, last)
			}
			pad := ""
			if i < n-1 {
				pad = strings.Repeat(" ", widths[i]-utf8.RuneCountInString(text)+gap)
			}
			if header {
				b.WriteString(s.paint(bold, text) + pad)
			} else {
				b.WriteString(s.paint(c.color, text) + pad)
			}
		}
		io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n")
	}
	line(plain(t.header...), true)
	for _, r := range t.rows {
		line(r, false)
	}
}
