package broker_test

import (
	"testing"

	"switchboard/services/gateway/broker"
)

func TestSlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"123456789", 0x31c3 % broker.SlotCount}, // CRC-16/XMODEM check value
		{"foo", 12182},
		{"{user1000}.following", broker.Slot("user1000")},
		{"sb:{conversation:1}:pos", broker.Slot("conversation:1")},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := broker.Slot(tt.key); got != tt.want {
				t.Fatalf("Slot(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
	if broker.Slot("foo{}{bar}") == broker.Slot("bar") {
		t.Fatal("an empty hash tag must not fall through to the next one")
	}
}
