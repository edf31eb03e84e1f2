package analysis

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// A MetricTemplate is written by any tenant that may create one, and its
// query renders inside the manager that serves every tenant. These limits
// keep one query from taking the manager down.
//
// text/template cannot be interrupted from outside (no context, and a
// goroutine cannot be stopped), so a deadline would only stop waiting for a
// render, not the render. Instead every way a template can spend memory or
// time is bounded:
//
//   - the source is at most maxQuerySource bytes;
//   - the output goes through a writer that fails as soon as it would pass
//     maxRendered, which stops the render at that write;
//   - the functions that build values (printf, print, println, html, js,
//     urlquery) are replaced by ones that refuse a result above maxRendered
//     and check a printf's widths and precisions before formatting, so a
//     value kept in a variable and never written cannot grow either;
//   - every range iteration counts against maxRangeIterations (a loop that
//     writes nothing, such as {{ range 1000000000 }}, still stops);
//   - define, block and template are refused: a template calling itself
//     twice runs exponentially long within text/template's depth limit.
const (
	maxQuerySource     = 16 << 10
	maxRendered        = 64 << 10
	maxRangeIterations = 10000
)

// errTooLarge is the error of a render that passes maxRendered.
var errTooLarge = fmt.Errorf("query template renders more than %d KiB", maxRendered>>10)

// budgetFunc is the function put at the start of every range body.
const budgetFunc = "sluiceRangeBudget"

// cappedWriter keeps what is written up to max bytes and fails the write
// that would pass it, keeping nothing of that write.
type cappedWriter struct {
	buf []byte
	max int
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > w.max {
		return 0, errTooLarge
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// safeFuncs returns the capped replacements of text/template's value
// building functions and the range budget, fresh for one render.
func safeFuncs() template.FuncMap {
	iterations := 0
	return template.FuncMap{
		"printf":   safePrintf,
		"print":    func(args ...any) (string, error) { return capped(args, fmt.Sprint) },
		"println":  func(args ...any) (string, error) { return capped(args, fmt.Sprintln) },
		"html":     escaper(template.HTMLEscaper),
		"js":       escaper(template.JSEscaper),
		"urlquery": escaper(template.URLQueryEscaper),
		budgetFunc: func() (string, error) {
			iterations++
			if iterations > maxRangeIterations {
				return "", fmt.Errorf("query template runs more than %d range iterations", maxRangeIterations)
			}
			return "", nil
		},
	}
}

// capped formats args with format when the sum of their own formats (each
// bounded: every value a template can build is) stays within maxRendered.
func capped(args []any, format func(...any) string) (string, error) {
	if _, err := argsSize(args, 1); err != nil {
		return "", err
	}
	return limit(format(args...))
}

// argsSize is the formatted size of args times factor, or errTooLarge when
// that passes maxRendered.
func argsSize(args []any, factor int) (int, error) {
	n := 0
	for _, a := range args {
		n += len(fmt.Sprint(a)) * factor
		if n > maxRendered*factor {
			return 0, errTooLarge
		}
	}
	return n, nil
}

// safePrintf is fmt.Sprintf that refuses, before formatting, a format whose
// widths and precisions add up to more than maxRendered, and afterwards a
// result above it. fmt itself allows a width up to a million per verb.
func safePrintf(format string, args ...any) (string, error) {
	if err := checkWidths(format); err != nil {
		return "", err
	}
	// A verb may expand its argument a few times over (%q, %x, %#v): allow
	// for that before formatting. What is left (a float's few hundred digits
	// per verb) is bounded by the source size, and the result is checked.
	const expansion = 8
	if _, err := argsSize(args, expansion); err != nil {
		return "", err
	}
	return limit(fmt.Sprintf(format, args...))
}

// checkWidths refuses a printf format whose widths and precisions add up to
// more than maxRendered, or that takes one from an argument (*). Digits of
// an argument index (%[2]d) count too, which only errs on the safe side.
func checkWidths(format string) error {
	sum := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
	directive:
		for i++; i < len(format); i++ {
			switch c := format[i]; {
			case c == '*':
				return errors.New("query template printf may not take a width or precision from an argument")
			case c >= '0' && c <= '9':
				n := 0
				for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
					if n = n*10 + int(format[i]-'0'); n > maxRendered {
						return errTooLarge
					}
				}
				if sum += n; sum > maxRendered {
					return errTooLarge
				}
				i--
			case strings.IndexByte("+-# .[]", c) >= 0:
			default:
				break directive // the verb (or %%) ends the directive
			}
		}
	}
	return nil
}

// escaper caps one of text/template's escaping functions.
func escaper(escape func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		if _, err := argsSize(args, 1); err != nil {
			return "", err
		}
		return limit(escape(args...))
	}
}

// limit refuses a value longer than maxRendered.
func limit(s string) (string, error) {
	if len(s) > maxRendered {
		return "", errTooLarge
	}
	return s, nil
}

// bound refuses a parsed query that defines or calls templates and puts the
// range budget at the start of every range body.
func bound(tpl *template.Template) error {
	if len(tpl.Templates()) > 1 || tpl.Tree == nil {
		return errNoTemplates
	}
	return boundList(tpl.Tree, tpl.Tree.Root)
}

var errNoTemplates = errors.New("query template may not define or call templates")

func boundList(tree *parse.Tree, list *parse.ListNode) error {
	if list == nil {
		return nil
	}
	for _, n := range list.Nodes {
		if err := boundNode(tree, n); err != nil {
			return err
		}
	}
	return nil
}

func boundNode(tree *parse.Tree, n parse.Node) error {
	switch n := n.(type) {
	case *parse.TemplateNode:
		return errNoTemplates
	case *parse.IfNode:
		return boundBranch(tree, &n.BranchNode)
	case *parse.WithNode:
		return boundBranch(tree, &n.BranchNode)
	case *parse.RangeNode:
		if err := boundBranch(tree, &n.BranchNode); err != nil {
			return err
		}
		if n.List == nil {
			n.List = &parse.ListNode{NodeType: parse.NodeList, Pos: n.Pos}
		}
		n.List.Nodes = append([]parse.Node{budgetCall(tree, n.Pos, n.Line)}, n.List.Nodes...)
	case *parse.ListNode:
		return boundList(tree, n)
	}
	return nil
}

func boundBranch(tree *parse.Tree, b *parse.BranchNode) error {
	if err := boundList(tree, b.List); err != nil {
		return err
	}
	return boundList(tree, b.ElseList)
}

// budgetCall is the action {{ sluiceRangeBudget }}; it writes nothing.
func budgetCall(tree *parse.Tree, pos parse.Pos, line int) parse.Node {
	ident := parse.NewIdentifier(budgetFunc).SetTree(tree).SetPos(pos)
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{ident}}
	pipe := &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Line: line, Cmds: []*parse.CommandNode{cmd}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Line: line, Pipe: pipe}
}
