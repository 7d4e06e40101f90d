package mqtt

import "testing"

func TestValidTopicFilter(t *testing.T) {
	for _, f := range []string{"#", "+", "a", "a/b", "a/+", "+/b", "a/#", "+/+", "/", "//", "/+/#", "sport/tennis/+/#", "$SYS/#",
		"$share/g/a/#", "$share/g/+", "$share/g//"} {
		if err := ValidTopicFilter(f); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
	for _, f := range []string{"", "a#", "a/#/b", "#/", "a+", "+a", "a/b+", "sport/tennis#", "a\x00",
		"$share/", "$share//a", "$share/g", "$share/g/", "$share/g+/a", "$share/g/a#"} {
		if err := ValidTopicFilter(f); err == nil {
			t.Errorf("%q: valid", f)
		}
	}
}

func TestValidTopicName(t *testing.T) {
	for _, n := range []string{"a", "/", "a/b", "$SYS/x", "é"} {
		if err := ValidTopicName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "a/+", "#", "a\x00b", "\xed\xa0\x80"} {
		if err := ValidTopicName(n); err == nil {
			t.Errorf("%q: valid", n)
		}
	}
}

func TestParseShared(t *testing.T) {
	g, f, err := ParseShared("$share/consumer1/sport/tennis/+")
	if err != nil || g != "consumer1" || f != "sport/tennis/+" {
		t.Fatal(g, f, err)
	}
	if _, _, err := ParseShared("sport/tennis"); err == nil {
		t.Fatal("not shared but parsed")
	}
	if !IsShared("$share/g/a") || IsShared("$SYS/a") {
		t.Fatal("IsShared")
	}
}

// TestMatch uses the examples of MQTT 5.0 section 4.7 (3.1.1 section 4.7).
func TestMatch(t *testing.T) {
	for _, c := range []struct {
		filter, name string
		want         bool
	}{
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"#", "sport/tennis", true},
		{"#", "/", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+", "a", true},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"#", "$SYS/monitor/Clients", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},
		{"+/#", "a", true},
	} {
		if got := Match(c.filter, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.name, got, c.want)
		}
	}
}
