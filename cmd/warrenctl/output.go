package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// writeJSON writes the API's JSON answer indented, as it came (field order and numbers kept).
func writeJSON(w io.Writer, data []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// lookup follows a dotted path ("message_stats.publish_details.rate") into decoded JSON; nil if
// a step is missing.
func lookup(v any, path string) any {
	for _, step := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[step]; !ok {
			return nil
		}
	}
	return v
}

// cell renders one value for a table: strings as they are, an array of strings joined by commas,
// other arrays and objects as compact JSON, a missing value as nothing. Tabs and newlines are
// escaped so they cannot break the columns.
func cell(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		s = x
	case json.Number:
		s = x.String()
	case bool:
		s = fmt.Sprint(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			str, ok := e.(string)
			if !ok {
				parts = nil
				break
			}
			parts = append(parts, str)
		}
		if parts != nil || len(x) == 0 {
			s = strings.Join(parts, ",")
			break
		}
		b, _ := json.Marshal(x)
		s = string(b)
	default:
		b, _ := json.Marshal(x)
		s = string(b)
	}
	return strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// writeTable writes rows (JSON objects) as aligned columns with a header of the column paths.
func writeTable(w io.Writer, cols []string, rows []any) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, r := range rows {
		cells := make([]string, len(cols))
		for i, col := range cols {
			cells[i] = cell(lookup(r, strings.TrimSpace(col)))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// writePairs writes name/value lines, aligned.
func writePairs(w io.Writer, rows [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], cell(r[1]))
	}
	return tw.Flush()
}
