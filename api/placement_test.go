package api

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPlacementMatches(t *testing.T) {
	t.Parallel()
	eu := Node{Name: "n1", Labels: map[string]string{"zone": "eu", "gpu": "true"}}
	us := Node{Name: "n2", Labels: map[string]string{"zone": "us"}}
	bare := Node{Name: "n3"}
	c := func(k, op, v string) Constraint { return Constraint{Key: k, Op: op, Value: v} }
	tests := []struct {
		name string
		p    Placement
		node Node
		want bool
	}{
		{"empty placement matches all", Placement{}, bare, true},
		{"listed node", Placement{Nodes: []string{"n1", "n2"}}, us, true},
		{"unlisted node", Placement{Nodes: []string{"n1"}}, us, false},
		{"hostname ==", Placement{Constraints: []Constraint{c("node.hostname", "==", "n1")}}, eu, true},
		{"hostname == other", Placement{Constraints: []Constraint{c("node.hostname", "==", "n1")}}, us, false},
		{"hostname !=", Placement{Constraints: []Constraint{c("node.hostname", "!=", "n1")}}, us, true},
		{"hostname != self", Placement{Constraints: []Constraint{c("node.hostname", "!=", "n1")}}, eu, false},
		{"label ==", Placement{Constraints: []Constraint{c("node.labels.zone", "==", "eu")}}, eu, true},
		{"label == other value", Placement{Constraints: []Constraint{c("node.labels.zone", "==", "eu")}}, us, false},
		{"label == missing", Placement{Constraints: []Constraint{c("node.labels.zone", "==", "eu")}}, bare, false},
		{"label !=", Placement{Constraints: []Constraint{c("node.labels.zone", "!=", "eu")}}, us, true},
		{"label != missing", Placement{Constraints: []Constraint{c("node.labels.zone", "!=", "eu")}}, bare, true},
		{"label != same", Placement{Constraints: []Constraint{c("node.labels.zone", "!=", "eu")}}, eu, false},
		{"all constraints hold", Placement{Constraints: []Constraint{c("node.labels.zone", "==", "eu"), c("node.labels.gpu", "==", "true")}}, eu, true},
		{"one constraint fails", Placement{Constraints: []Constraint{c("node.labels.zone", "==", "eu"), c("node.hostname", "!=", "n1")}}, eu, false},
		{"nodes and constraints ANDed", Placement{Nodes: []string{"n2"}, Constraints: []Constraint{c("node.labels.zone", "==", "eu")}}, us, false},
		{"invalid op never matches", Placement{Constraints: []Constraint{c("node.hostname", "=", "n1")}}, eu, false},
		{"invalid key never matches", Placement{Constraints: []Constraint{c("node.role", "!=", "x")}}, eu, false},
	}
	for _, tt := range tests {
		if got := tt.p.Matches(tt.node); got != tt.want {
			t.Errorf("%s: Matches(%s) = %v, want %v", tt.name, tt.node.Name, got, tt.want)
		}
	}
}

func TestParseConstraint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Constraint
		err  bool
	}{
		{in: "node.hostname==n1", want: Constraint{"node.hostname", "==", "n1"}},
		{in: "  node.hostname   !=   n1  ", want: Constraint{"node.hostname", "!=", "n1"}},
		{in: "node.labels.zone == eu", want: Constraint{"node.labels.zone", "==", "eu"}},
		{in: "node.labels.a.b!=c", want: Constraint{"node.labels.a.b", "!=", "c"}},
		{in: "engine.labels.x == y", err: true},
		{in: "node.role == manager", err: true},
		{in: "node.labels. == x", err: true},
		{in: "node.hostname = n1", err: true},
		{in: "node.hostname == ", err: true},
		{in: "node.hostname == a == b", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		got, err := ParseConstraint(tt.in)
		if tt.err {
			if err == nil || !strings.Contains(err.Error(), "unsupported constraint") {
				t.Errorf("ParseConstraint(%q) = %+v, %v; want unsupported constraint error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseConstraint(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestNodeNames(t *testing.T) {
	t.Parallel()
	p := Placement{
		Nodes: []string{"n1", "n2"},
		Constraints: []Constraint{
			{"node.hostname", "==", "n3"},
			{"node.hostname", "==", "n1"},
			{"node.hostname", "!=", "n4"},
			{"node.labels.zone", "==", "n5"},
		},
	}
	if got, want := p.NodeNames(), []string{"n1", "n2", "n3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("NodeNames() = %v, want %v", got, want)
	}
	if got := (Placement{}).NodeNames(); len(got) != 0 {
		t.Errorf("empty NodeNames() = %v", got)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	okBuild := BuildSpec{Name: "p/s", Project: "p", Service: "s", Image: "p/s", Context: "/src"}
	okImage := ImageSpec{Name: "p/s", Project: "p", Service: "s", Image: "busybox"}
	tests := []struct {
		name string
		err  error
		want string // "" means valid
	}{
		{"build ok", okBuild.Validate(), ""},
		{"build bad name", with(okBuild, func(b *BuildSpec) { b.Name = "s" }).Validate(), "want <project>/<service>"},
		{"build name mismatch", with(okBuild, func(b *BuildSpec) { b.Service = "x" }).Validate(), "does not match"},
		{"build nested name", with(okBuild, func(b *BuildSpec) { b.Name = "p/s/t" }).Validate(), "want <project>/<service>"},
		{"build no context", with(okBuild, func(b *BuildSpec) { b.Context = "" }).Validate(), "empty context"},
		{"image ok", okImage.Validate(), ""},
		{"image from build ok", with(okImage, func(i *ImageSpec) { i.Image, i.Build = "", "p/s" }).Validate(), ""},
		{"image both", with(okImage, func(i *ImageSpec) { i.Build = "p/s" }).Validate(), "exactly one"},
		{"image neither", with(okImage, func(i *ImageSpec) { i.Image = "" }).Validate(), "exactly one"},
		{"image bad name", with(okImage, func(i *ImageSpec) { i.Name = "/s" }).Validate(), "want <project>/<service>"},
		{"image bad op", with(okImage, func(i *ImageSpec) {
			i.Placement.Constraints = []Constraint{{"node.hostname", "=~", "n1"}}
		}).Validate(), "operator"},
		{"image bad key", with(okImage, func(i *ImageSpec) {
			i.Placement.Constraints = []Constraint{{"node.id", "==", "n1"}}
		}).Validate(), "constraint key"},
		{"image empty node", with(okImage, func(i *ImageSpec) { i.Placement.Nodes = []string{""} }).Validate(), "empty node name"},
	}
	for _, tt := range tests {
		switch {
		case tt.want == "" && tt.err != nil:
			t.Errorf("%s: unexpected error %v", tt.name, tt.err)
		case tt.want != "" && (tt.err == nil || !strings.Contains(tt.err.Error(), tt.want)):
			t.Errorf("%s: error %v, want it to contain %q", tt.name, tt.err, tt.want)
		}
	}
}

// with returns a modified copy of v, keeping table rows one line each.
func with[T any](v T, f func(*T)) T {
	f(&v)
	return v
}

// TestSetConditions keeps a condition's transition time while its status
// holds, moves it when the status changes, and drops conditions not set.
func TestSetConditions(t *testing.T) {
	t0, t1 := time.Unix(100, 0), time.Unix(200, 0)
	prev := []Condition{
		{Type: ConditionReady, Status: "False", Reason: "BuildFailed", LastTransitionTime: t0},
		{Type: ConditionReconciling, Status: "True", LastTransitionTime: t0},
	}
	got := SetConditions(prev, t1,
		Condition{Type: ConditionReady, Status: "False", Reason: "Unschedulable", Message: "new message"},
		Condition{Type: ConditionStalled, Status: "True"})
	if len(got) != 2 || got[0].LastTransitionTime != t0 || got[0].Reason != "Unschedulable" || got[0].Message != "new message" ||
		got[1].Type != ConditionStalled || got[1].LastTransitionTime != t1 {
		t.Errorf("same status kept: %+v", got)
	}
	if got := SetConditions(prev, t1, Condition{Type: ConditionReady, Status: "True"}); got[0].LastTransitionTime != t1 {
		t.Errorf("a status change kept the old time: %+v", got)
	}
}
