package sender

import (
	"io"
	"strings"
	"testing"
)

func TestLayerSpecs(t *testing.T) {
	tests := []struct {
		name, layers, quality string
		want                  []layerSpec
	}{
		{"unset: one layer of WIDTH and QUALITY", "", "", []layerSpec{{640, 80}}},
		{"three widths, QUALITY for all", "1280,640,320", "", []layerSpec{{1280, 80}, {640, 80}, {320, 80}}},
		{"one quality for all", "1280,640,320", "70", []layerSpec{{1280, 70}, {640, 70}, {320, 70}}},
		{"one quality each", "1280,640,320", "85,75,60", []layerSpec{{1280, 85}, {640, 75}, {320, 60}}},
		{"spaces around items", " 640 , 320 ", " 90, 50", []layerSpec{{640, 90}, {320, 50}}},
		{"one layer", "800", "", []layerSpec{{800, 80}}},
		{"ascending is allowed", "320,1280", "", []layerSpec{{320, 80}, {1280, 80}}},
		{"bounds", "7680,16", "1,100", []layerSpec{{7680, 1}, {16, 100}}},
		{"four layers", "1920,1280,640,320", "", []layerSpec{{1920, 80}, {1280, 80}, {640, 80}, {320, 80}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Layers, c.LayerQuality = tt.layers, tt.quality
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			got, err := c.layerSpecs()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("layers %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("layers %v, want %v", got, tt.want)
				}
			}
			if c.layered() != (tt.layers != "") {
				t.Fatalf("layered() = %v with SENDER_LAYERS=%q", c.layered(), tt.layers)
			}
		})
	}
}

// TestLayerSettingsRejected: every bad SENDER_LAYERS or SENDER_LAYER_QUALITY
// stops the sender with an error naming the setting and saying what is
// wrong.
func TestLayerSettingsRejected(t *testing.T) {
	tests := []struct {
		name, layers, quality, protocol string
		want                            []string // substrings of the error
	}{
		{"not a number", "1280,big,320", "", "", []string{"SENDER_LAYERS (-layers)", `"big" is not an integer`}},
		{"empty item", "1280,,320", "", "", []string{"SENDER_LAYERS", "item 2 is empty"}},
		{"trailing comma", "1280,640,", "", "", []string{"SENDER_LAYERS", "item 3 is empty"}},
		{"only a comma", ",", "", "", []string{"SENDER_LAYERS", "item 1 is empty"}},
		{"blank", "  ", "", "", []string{"SENDER_LAYERS", "item 1 is empty"}},
		{"fractional width", "640.5", "", "", []string{"SENDER_LAYERS", "not an integer"}},
		{"x in width", "640x480", "", "", []string{"SENDER_LAYERS", "not an integer"}},
		{"too narrow", "640,15", "", "", []string{"SENDER_LAYERS", "width 15 must be 16-7680"}},
		{"zero", "0", "", "", []string{"SENDER_LAYERS", "width 0 must be 16-7680"}},
		{"negative", "640,-320", "", "", []string{"SENDER_LAYERS", "width -320 must be 16-7680"}},
		{"too wide", "8000", "", "", []string{"SENDER_LAYERS", "width 8000 must be 16-7680"}},
		{"five layers", "1920,1280,640,320,160", "", "", []string{"SENDER_LAYERS", "5 widths", "at most 4 layers"}},
		{"duplicate width", "1280,640,640", "", "", []string{"SENDER_LAYERS", "width 640 is given twice"}},
		{"seed protocol", "1280,640", "", ProtocolSeed, []string{"SENDER_LAYERS", "seed protocol", "carry no layer"}},

		{"quality without layers", "", "80", "", []string{"SENDER_LAYER_QUALITY (-layer-quality)", "without SENDER_LAYERS", "SENDER_QUALITY"}},
		{"quality not a number", "1280,640", "80,good", "", []string{"SENDER_LAYER_QUALITY", `"good" is not an integer`}},
		{"quality empty item", "1280,640", "80,", "", []string{"SENDER_LAYER_QUALITY", "item 2 is empty"}},
		{"too few qualities", "1280,640,320", "80,70", "", []string{"SENDER_LAYER_QUALITY", "2 values for 3 layers", "one per layer, or one for all"}},
		{"too many qualities", "1280,640", "80,70,60", "", []string{"SENDER_LAYER_QUALITY", "3 values for 2 layers"}},
		{"quality zero", "1280,640", "80,0", "", []string{"SENDER_LAYER_QUALITY", "quality 0 must be 1-100"}},
		{"quality 101 for all", "1280,640", "101", "", []string{"SENDER_LAYER_QUALITY", "quality 101 must be 1-100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Layers, c.LayerQuality = tt.layers, tt.quality
			if tt.protocol != "" {
				c.Protocol = tt.protocol
			}
			wantInvalid(t, c, tt.want)
		})
	}
}

// TestLayerSettingsFromEnvAndFlags: the settings are read from the
// environment, a flag overrides them, and SENDER_LAYERS replaces
// SENDER_WIDTH, also for the test pattern's size.
func TestLayerSettingsFromEnvAndFlags(t *testing.T) {
	t.Setenv("SENDER_LAYERS", "1280,640,320")
	t.Setenv("SENDER_LAYER_QUALITY", "90")
	t.Setenv("SENDER_WIDTH", "200")
	c, err := LoadConfig([]string{"-layer-quality", "85,75,60"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Layers != "1280,640,320" || c.LayerQuality != "85,75,60" {
		t.Fatalf("layers %q quality %q", c.Layers, c.LayerQuality)
	}
	if w := c.testPatternWidth(); w != 1280 {
		t.Errorf("test pattern %d wide, want the widest layer, 1280", w)
	}
	c.Layers = "320,960,640"
	c.LayerQuality = ""
	if w := c.testPatternWidth(); w != 960 {
		t.Errorf("test pattern %d wide, want the widest layer, 960", w)
	}
	c.Layers = ""
	if w := c.testPatternWidth(); w != 200 {
		t.Errorf("test pattern %d wide without layers, want SENDER_WIDTH 200", w)
	}

	t.Setenv("SENDER_PROTOCOL", "seed")
	if _, err := LoadConfig(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "SENDER_LAYERS") {
		t.Fatalf("seed protocol with layers: %v", err)
	}
}

// wantInvalid checks that c does not validate, with an error holding every
// string of want.
func wantInvalid(t *testing.T, c Config, want []string) {
	t.Helper()
	err := c.Validate()
	if err == nil {
		t.Fatalf("config validated: %+v", c)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
