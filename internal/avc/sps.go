package avc

import "fmt"

// MaxDimension bounds the width and height ParseSPS accepts, in pixels (level
// 6.2's largest frame is 139,264 macroblocks, e.g. 8192×4320; this allows any
// shape of it).
const MaxDimension = 16384

// SPS holds the fields of a sequence parameter set that a relay and a browser
// decoder need.
type SPS struct {
	ProfileIDC uint8 // profile_idc: 66 baseline, 77 main, 100 high, ...
	// Constraints is the byte after profile_idc: constraint_set0_flag in the
	// most significant bit through constraint_set5_flag, then two reserved zero
	// bits. Constrained baseline is profile 66 with constraint_set1 (0x40) set.
	Constraints uint8
	LevelIDC    uint8  // level_idc: 31 for level 3.1, ...
	ID          uint32 // seq_parameter_set_id

	ChromaFormatIDC uint32 // 0 monochrome, 1 4:2:0 (the default), 2 4:2:2, 3 4:4:4
	BitDepthLuma    uint32 // bits per luma sample (8 unless a high profile says otherwise)
	BitDepthChroma  uint32
	FrameMBSOnly    bool // false: the stream may hold fields (interlaced)
	MaxNumRefFrames uint32

	// CodedWidth and CodedHeight are the decoded picture's size in whole
	// macroblocks, before cropping.
	CodedWidth, CodedHeight int
	// Width and Height are the picture's size after the SPS's frame cropping:
	// the size the camera captured.
	Width, Height int
	// CropLeft, CropRight, CropTop and CropBottom are the pixels cropped from
	// each side (already applied to Width and Height).
	CropLeft, CropRight, CropTop, CropBottom int
}

// Codec returns the WebCodecs / RFC 6381 codec string for the stream,
// "avc1.PPCCLL" with profile_idc, the constraint byte and level_idc in
// upper-case hexadecimal, e.g. "avc1.42C01F" (constrained baseline, level 3.1).
func (s SPS) Codec() string {
	return fmt.Sprintf("avc1.%02X%02X%02X", s.ProfileIDC, s.Constraints, s.LevelIDC)
}

// hasChromaInfo reports whether profile_idc is one of the profiles whose SPS
// carries chroma_format_idc, bit depths and scaling matrices (clause 7.3.2.1.1).
func hasChromaInfo(profile uint8) bool {
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		return true
	}
	return false
}

// ParseSPS parses a sequence parameter set NAL unit (with its one-byte NAL
// header, without start code), as Split returns it. It reads up to the frame
// cropping fields and ignores the VUI. It fails with an error wrapping
// ErrMalformed on a unit that is not an SPS, is truncated, or holds values out
// of the ranges H.264 allows.
func ParseSPS(nalu []byte) (SPS, error) {
	s, err := parseSPS(nalu)
	if err != nil {
		return SPS{}, fmt.Errorf("failed to parse SPS: %w", err)
	}
	return s, nil
}

func parseSPS(nalu []byte) (SPS, error) {
	if len(nalu) == 0 {
		return SPS{}, fmt.Errorf("empty NAL unit: %w", ErrMalformed)
	}
	if nalu[0]&0x80 != 0 {
		return SPS{}, fmt.Errorf("forbidden_zero_bit set: %w", ErrMalformed)
	}
	if t := Type(nalu); t != NALSPS {
		return SPS{}, fmt.Errorf("NAL unit type is %d (%s), not 7: %w", uint8(t), t, ErrMalformed)
	}
	rbsp := unescapeRBSP(nalu[1:])
	if len(rbsp) < 4 {
		return SPS{}, fmt.Errorf("%d bytes, too short: %w", len(nalu), ErrMalformed)
	}
	s := SPS{ProfileIDC: rbsp[0], Constraints: rbsp[1], LevelIDC: rbsp[2], ChromaFormatIDC: 1, BitDepthLuma: 8, BitDepthChroma: 8}
	r := &bitReader{b: rbsp, pos: 24}
	if s.ID = r.ue(); s.ID > 31 {
		return SPS{}, fmt.Errorf("seq_parameter_set_id %d out of range 0-31: %w", s.ID, ErrMalformed)
	}
	separateColourPlanes := false
	if hasChromaInfo(s.ProfileIDC) {
		if s.ChromaFormatIDC = r.ue(); s.ChromaFormatIDC > 3 {
			return SPS{}, fmt.Errorf("chroma_format_idc %d out of range 0-3: %w", s.ChromaFormatIDC, ErrMalformed)
		}
		if s.ChromaFormatIDC == 3 {
			separateColourPlanes = r.u1() == 1
		}
		dl, dc := r.ue(), r.ue()
		if dl > 6 || dc > 6 {
			return SPS{}, fmt.Errorf("bit_depth_minus8 %d/%d out of range 0-6: %w", dl, dc, ErrMalformed)
		}
		s.BitDepthLuma, s.BitDepthChroma = dl+8, dc+8
		r.u1()           // qpprime_y_zero_transform_bypass_flag
		if r.u1() == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if s.ChromaFormatIDC == 3 {
				lists = 12
			}
			for i := range lists {
				if r.u1() == 1 { // seq_scaling_list_present_flag[i]
					size := 16
					if i >= 6 {
						size = 64
					}
					if err := skipScalingList(r, size); err != nil {
						return SPS{}, err
					}
				}
			}
		}
	}
	if v := r.ue(); v > 12 {
		return SPS{}, fmt.Errorf("log2_max_frame_num_minus4 %d out of range 0-12: %w", v, ErrMalformed)
	}
	switch pocType := r.ue(); pocType {
	case 0:
		if v := r.ue(); v > 12 {
			return SPS{}, fmt.Errorf("log2_max_pic_order_cnt_lsb_minus4 %d out of range 0-12: %w", v, ErrMalformed)
		}
	case 1:
		r.u1() // delta_pic_order_always_zero_flag
		r.se() // offset_for_non_ref_pic
		r.se() // offset_for_top_to_bottom_field
		n := r.ue()
		if n > 255 {
			return SPS{}, fmt.Errorf("num_ref_frames_in_pic_order_cnt_cycle %d out of range 0-255: %w", n, ErrMalformed)
		}
		for range n {
			r.se() // offset_for_ref_frame[i]
		}
	case 2:
	default:
		if r.err == nil {
			return SPS{}, fmt.Errorf("pic_order_cnt_type %d out of range 0-2: %w", pocType, ErrMalformed)
		}
	}
	if s.MaxNumRefFrames = r.ue(); s.MaxNumRefFrames > 16 {
		return SPS{}, fmt.Errorf("max_num_ref_frames %d out of range 0-16: %w", s.MaxNumRefFrames, ErrMalformed)
	}
	r.u1() // gaps_in_frame_num_value_allowed_flag
	wMBs, hMapUnits := r.ue()+1, r.ue()+1
	s.FrameMBSOnly = r.u1() == 1
	if !s.FrameMBSOnly {
		r.u1() // mb_adaptive_frame_field_flag
	}
	r.u1() // direct_8x8_inference_flag
	var crop [4]uint32
	if r.u1() == 1 { // frame_cropping_flag
		for i := range crop {
			crop[i] = r.ue()
		}
	}
	if r.err != nil {
		return SPS{}, r.err
	}
	fieldFactor := uint32(1)
	if !s.FrameMBSOnly {
		fieldFactor = 2
	}
	if wMBs == 0 || hMapUnits == 0 || wMBs > MaxDimension/16 || hMapUnits*fieldFactor > MaxDimension/16 {
		return SPS{}, fmt.Errorf("picture of %d×%d macroblocks out of range (at most %d pixels a side): %w", wMBs, hMapUnits*fieldFactor, MaxDimension, ErrMalformed)
	}
	s.CodedWidth, s.CodedHeight = int(wMBs*16), int(hMapUnits*fieldFactor*16)
	// Crop units (clause 7.4.2.1.1, equations 7-19 to 7-22).
	cropX, cropY := 1, int(fieldFactor)
	if s.ChromaFormatIDC != 0 && !separateColourPlanes {
		subW, subH := 2, 2 // 4:2:0
		switch s.ChromaFormatIDC {
		case 2:
			subH = 1
		case 3:
			subW, subH = 1, 1
		}
		cropX, cropY = subW, subH*int(fieldFactor)
	}
	for _, c := range crop {
		if c > MaxDimension {
			return SPS{}, fmt.Errorf("frame cropping offset %d out of range: %w", c, ErrMalformed)
		}
	}
	s.CropLeft, s.CropRight = int(crop[0])*cropX, int(crop[1])*cropX
	s.CropTop, s.CropBottom = int(crop[2])*cropY, int(crop[3])*cropY
	s.Width = s.CodedWidth - s.CropLeft - s.CropRight
	s.Height = s.CodedHeight - s.CropTop - s.CropBottom
	if s.Width <= 0 || s.Height <= 0 {
		return SPS{}, fmt.Errorf("frame cropping (%d,%d,%d,%d) leaves nothing of %d×%d: %w",
			s.CropLeft, s.CropRight, s.CropTop, s.CropBottom, s.CodedWidth, s.CodedHeight, ErrMalformed)
	}
	return s, nil
}

// skipScalingList reads past one scaling_list() (clause 7.3.2.1.1.1) of size
// 16 or 64 coefficients.
func skipScalingList(r *bitReader, size int) error {
	last, next := int32(8), int32(8)
	for range size {
		if next != 0 {
			delta := r.se()
			if r.err != nil {
				return r.err
			}
			if delta < -128 || delta > 127 {
				return fmt.Errorf("scaling list delta_scale %d out of range -128..127: %w", delta, ErrMalformed)
			}
			next = (last + delta + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
	return r.err
}
