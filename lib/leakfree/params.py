"""The settings of the numpy cores (fingerprints, window shapes, the verifier), apart from
the cores themselves: the config tree holds them, and reading a config (`leakfree --help`)
need not load scipy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeakParams:
    neighborhood: tuple[int, int]  # frames x bins a peak must dominate
    rel_db: float  # how far below the loudest frame nearby a peak may be
    fan_out: int  # partners per anchor peak
    min_dt: int  # frames between anchor and partner: 0 pairs peaks of the same frame
    max_dt: int
    max_df: int  # bins between anchor and partner
    dt_quant: int  # frames per time-distance step in the hash


@dataclass(frozen=True)
class TripletParams:
    fan_out: int  # partners per anchor peak; every two of them make a triplet with it
    min_dt: int  # frames from the anchor to a partner
    max_dt: int
    max_octaves: float  # partners within this many octaves of the anchor
    ratio_steps: int  # steps per octave of the partners' frequencies relative to the anchor
    anchor_steps: int  # steps per octave of the anchor's own frequency, which a speed change shifts
    time_steps: int  # steps of the nearer partner's share of the farther one's time distance
    distance_steps: int  # steps per octave of the farther partner's time distance, which a speed change scales


@dataclass(frozen=True)
class FingerprintParams:
    n_fft: int
    hop: int
    floor_db: float  # absolute level below which nothing counts as sound
    active_rel_db: float  # frames this far below the loudest frame are silence
    min_active_frames: int  # fewer active frames than this: near-empty, no fingerprint
    sparse: PeakParams
    dense: PeakParams
    strong: PeakParams
    triplets: TripletParams
    dense_below_active_s: float  # files with less active audio also get the dense and strong families
    dense_below_hashes: int  # ...and so do files with fewer sparse hashes than this
    event_gap_frames: int  # silence at least this long separates two sounds in one file
    mel_bands: int
    mel_every: int  # keep every n-th frame for the verifier's log-mel matrix
    mel_fmin: float
    mel_fmax: float


@dataclass(frozen=True)
class VerifyParams:
    min_correlation: float  # mean frame correlation at the best offset
    min_aligned_hashes: int  # hashes agreeing on one offset that back a correlation...
    min_backed_overlap_s: float  # ...over an overlap of at least this
    sure_correlation: float  # a correlation that needs no hash backing
    many_aligned_hashes: int  # this many aligned hashes...
    weak_correlation: float  # ...make do with this correlation
    min_aligned_share: float  # a share of the smaller file's landmarks aligned that needs no correlation...
    min_share_hashes: int  # ...when that share is at least this many hashes
    min_share_span_s: float  # ...spread over at least this much of the sound
    share_min_correlation: float  # ...at a correlation of at least this
    min_overlap_share: float  # of the shorter file's active frames inside the overlap
    min_overlap_frames: int  # absolute floor, so two clicks do not match on one frame
    active_rel_db: float  # log-mel frames this far below the loudest of their sound are silence
    quiet_floor_db: float  # frames this far below the file's loudest are silence anyway...
    gap_frames: int  # ...and this many of them in a row separate two sounds
    local_mean_frames: int  # window over which each band's level is normalised
    offset_bin_frames: int  # log-mel frames a hash offset may differ from the alignment
    band_floor_db: float  # bands this far below a file's loudest band hold nothing of it
    min_shared_bands: int  # fewer bands held by both, and all are compared
    band_mismatch_db: float  # bands whose level, one file's over the other's, strays this far from the typical
    max_scale_change: float  # time and frequency scales searched: 1 +- this
    scale_step: float  # step of the time scales tried
    min_triplet_votes: int  # triplet hashes agreeing on one time scale and offset...
    min_vote_share: float  # ...and at least this share of all matching triplets
    triplets_only_vote_share: float  # ...or this share, for a pair only triplets proposed
    min_voted_correlation: float  # the voted reading's correlation below which no other is tried
    peak_max_scale_change: float  # time and frequency scales searched when peaks vote: 1 +- this
    peak_freq_tolerance: float  # relative frequency two peaks may differ by, and the step of the scales tried
    peak_offset_frames: int  # hash frames per offset cell when peaks vote
    min_peak_significance: float  # peaks agreeing above chance, in deviations, that back a correlation
    hint_peak_significance: float  # ...that only point to a reading, where sure_correlation is asked
    many_peak_significance: float  # ...that make do with weak_correlation
    sure_peak_significance: float  # ...that make do with sure_peak_correlation, at any reading
    sure_peak_correlation: float
    min_reading_lead: float  # deviations the peaks' reading must lead any far from it by, or it only points
    min_echo_s: float  # shortest delay, and least centre, of an echo or reverb tail fitted...
    max_echo_s: float  # ...longest delay, between two files whose peaks agree...
    max_echo_gain: float  # ...when their correlation falls at most this short of what the peaks ask
    given_offset_error_s: float  # how far the frames may align from the offset a given reading puts them at
    caption_min_jaccard: float  # estimated caption Jaccard for a caption edge


@dataclass(frozen=True)
class ThroughParams:
    max_degree: int  # files with more duplicate edges than this are no pivot; 0: no pair is proposed through one
    min_overlap: float  # of the shorter of the two stretches of the pivot its two copies cover
    min_correlation: float  # a pivot's edge this strong, exact, or surely backed by hashes or peaks


@dataclass(frozen=True)
class ShapeParams:
    window_frames: int  # log-mel frames per window
    hop_frames: int  # log-mel frames between window starts
    bands: int  # the log-mel bands are averaged into this many
    modulations: int  # lowest envelope modulation frequencies kept per band
    range_db: float  # levels this far below the window's loudest are all the same
    silence_db: float  # windows whose loudest frame is this far below the file's are skipped
    neighbors: int  # nearest windows of other files proposed per window
    min_similarity: float  # cosine a neighbour needs to be proposed
    min_windows: int  # windows, of either file, that must propose a pair of files
    windows_per_block: int  # windows compared in one Spark task, per side


@dataclass(frozen=True)
class BandView:
    """Window shapes once more, over the log-mel bands whose centres lie in [low_hz, high_hz]."""

    low_hz: float
    high_hz: float
    bands: int  # those log-mel bands are averaged into this many
    neighbors: int  # as ShapeParams; 0: this view proposes nothing and is not indexed
    min_similarity: float
    min_windows: int
