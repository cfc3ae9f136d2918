defmodule Tms.CorruptionTest do
  # Damage on disk is caught by checksums, contained, and counted: flipped
  # bytes in a segment header, a chunk payload, a WAL record and the
  # registry, checked through the public API.
  use Tms.Case, async: true
  @moduletag :capture_log

  defp flip(path, at) do
    bytes = File.read!(path)
    <<before::binary-size(at), byte, rest::binary>> = bytes
    File.write!(path, <<before::binary, Bitwise.bxor(byte, 0x5A), rest::binary>>)
  end

  # Offsets of the WAL records holding points (kind 1), in order.
  defp point_records(<<_header::binary-size(20), records::binary>>), do: point_records(records, 20, [])

  defp point_records(<<len::little-32, _crc::32, kind, _::binary-size(len), rest::binary>>, at, acc) do
    # Points records: raw (kind 1, before packing) or packed (kind 3).
    acc = if kind in [1, 3], do: [at | acc], else: acc
    point_records(rest, at + 9 + len, acc)
  end

  defp point_records(_, _, acc), do: Enum.reverse(acc)

  test "a flipped segment header, chunk payload and WAL record are caught and counted", ctx do
    # A separate BEAM writes two flushed partitions and three unflushed
    # batches, then halts without closing: the WAL stays as a crash leaves it.
    code = """
    Application.ensure_all_started(:tms)
    {:ok, _} = Tms.start_link(name: :child, data_dir: #{inspect(ctx.dir)}, wal_sync: :never, partition_duration: 1_000)
    hosts = for h <- ~w(a b c), do: %{"host" => h}
    :ok = Tms.write_batch(:child, for(l <- hosts, t <- 0..99, do: {"m", l, t, t}))
    :ok = Tms.flush(:child)
    :ok = Tms.write_batch(:child, for(l <- hosts, t <- 1_000..1_099, do: {"m", l, t, t}))
    :ok = Tms.flush(:child)
    for t <- 2_000..2_002, do: :ok = Tms.write_batch(:child, for(l <- hosts, do: {"m", l, t, t}))
    :erlang.halt(0)
    """

    ebin = Path.join(Mix.Project.build_path(), "lib/tms/ebin")
    {_, 0} = System.cmd("elixir", ["-pa", ebin, "-e", code], stderr_to_stdout: true)

    [seg0] = Path.wildcard(Path.join(ctx.dir, "chunks/0/*.seg"))
    [seg1] = Path.wildcard(Path.join(ctx.dir, "chunks/1/*.seg"))
    flip(seg0, 10)
    # The values of series b's chunk (second of three) in segment 1: the
    # payload starts after the 44-byte header, one column entry (28 bytes)
    # and three chunk entries (20), with the shared column, then a's values.
    <<_::binary-size(12), 1::little-32, 3::little-32, _::binary-size(24), _::binary-size(20),
      column_len::little-32, _::binary-size(4), _::binary-size(12), a_len::little-32,
      _::binary>> = File.read!(seg1)

    flip(seg1, 44 + 28 + 3 * 20 + column_len + a_len + 3)
    wal = newest_wal(ctx.dir)
    [_, middle, _] = point_records(File.read!(wal))
    flip(wal, middle + 12)

    store = start_store(ctx)
    info = Tms.info!(store)
    assert info.quarantined_files == 1
    assert info.wal_corrupt_records == 1
    assert File.exists?(Path.join(ctx.dir, "quarantine"))

    # Series a and c answer from the intact chunks and the WAL.
    for h <- ~w(a c) do
      {:ok, [%{points: points}]} = Tms.query_range(store, "m", %{"host" => h}, 0, 10_000)
      assert Enum.map(points, &elem(&1, 0)) == Enum.to_list(1_000..1_099) ++ [2_000, 2_002]
    end

    # Series b's chunk in segment 1 is damaged: by default a query answers
    # what is readable (the WAL's points); with on_damage: :error it fails.
    assert {:ok, [%{points: [{2_000, _}, {2_002, _}]}]} =
             Tms.query_range(store, "m", %{"host" => "b"}, 0, 10_000)

    assert {:error, %Tms.Error{kind: :corrupt_data}} =
             Tms.query_range(store, "m", %{"host" => "b"}, 0, 10_000, on_damage: :error)

    # A whole-metric query answers the healthy series too.
    assert {:ok, [_, _, _]} = Tms.query_range(store, "m", %{}, 0, 10_000)
    assert %{corrupt_chunk_reads: 1, damaged_chunks: 1} = Tms.info!(store)

    # Compaction salvages the healthy chunks, quarantines the damaged file
    # and counts the loss; the partition compacts cleanly from then on.
    :ok = Tms.flush(store)
    assert {:ok, %{chunks_lost: 1, points_lost: 100, quarantined: 1}} = Tms.compact(store)
    assert %{chunks_lost: 1, points_lost: 100, quarantined_files: 2} = Tms.info!(store)
    assert {:ok, %{chunks_lost: 0}} = Tms.compact(store)

    for h <- ~w(a c) do
      {:ok, [%{points: points}]} = Tms.query_range(store, "m", %{"host" => h}, 0, 10_000, on_damage: :error)
      assert Enum.map(points, &elem(&1, 0)) == Enum.to_list(1_000..1_099) ++ [2_000, 2_002]
    end
  end

  test "a flipped byte in the registry stops the store from opening with a clear error", ctx do
    store = start_store(ctx)
    :ok = Tms.write(store, "m", %{"host" => "a"}, 1, 1)
    :ok = stop_supervised(ctx.store)
    registry = Path.join(ctx.dir, "registry.tms")
    flip(registry, div(File.stat!(registry).size, 2))

    assert %Tms.Error{kind: :corrupt_data, details: %{path: ^registry}} =
             start_error(name: ctx.store, data_dir: ctx.dir, wal_sync: :never)
  end

  defp newest_wal(dir), do: dir |> Path.join("wal/*.wal") |> Path.wildcard() |> Enum.sort() |> List.last()
end
