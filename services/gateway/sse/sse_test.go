package sse

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Deliver refuses a request past the waiting bound without blocking (the
// 429 of a post), and any request once the stream has ended (the 404).
func TestDeliverBounds(t *testing.T) {
	st, err := Open(httptest.NewRecorder(), httptest.NewRequest("GET", "/sse", nil), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := range inboxSize {
		if err := st.Deliver([]byte(`{}`)); err != nil {
			t.Fatalf("request %d refused: %v", i+1, err)
		}
	}
	if err := st.Deliver([]byte(`{}`)); !errors.Is(err, ErrBusy) {
		t.Fatalf("request %d: %v, want ErrBusy", inboxSize+1, err)
	}
	st.CloseNow()
	if err := st.Deliver([]byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after the end: %v, want ErrClosed", err)
	}
}
