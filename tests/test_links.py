from threshsearch.links import (
    dense_output_width,
    harmonic_input_widths,
    harmonic_layers,
    harmonic_output_layers,
    harmonic_output_width,
)


def test_harmonic_widths_match_the_reference_example():
    widths = [layer.width for layer in harmonic_layers(16, 40, 1.7)]
    assert widths == [40, 68, 40, 116, 40, 68, 40, 196, 40, 68, 40, 116, 40, 68, 40, 334]
    assert harmonic_output_width(16, 40, 1.7) == 654
    assert [layer.width for layer in harmonic_layers(4, 160, 1.7)] == [160, 272, 160, 462]
    assert harmonic_output_width(4, 160, 1.7) == 782


def test_harmonic_links_read_powers_of_two_back_nearest_first():
    layers = harmonic_layers(8, 10, 1.7)
    assert layers[0].inputs == (0,)
    assert layers[1].inputs == (1, 0)
    assert layers[3].inputs == (3, 2, 0)
    assert layers[5].inputs == (5, 4)
    assert layers[7].inputs == (7, 6, 4, 0)


def test_harmonic_output_is_odd_layers_and_last():
    assert harmonic_output_layers(4) == (1, 3, 4)
    assert harmonic_output_layers(5) == (1, 3, 5)
    assert harmonic_output_layers(1) == (1,)


def test_harmonic_input_widths_sum_the_layers_read():
    # layer 2 reads layer 1 (40) and the 288-channel block input; layer 3 reads layer 2 (68)
    assert harmonic_input_widths(288, 4, 40, 1.7) == (288, 328, 68, 68 + 40 + 288)


def test_dense_output_keeps_the_input():
    assert dense_output_width(64, 6, 32) == 256
