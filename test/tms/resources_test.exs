defmodule Tms.ResourcesTest do
  # A file-size limit (RLIMIT_FSIZE, set with `ulimit -f` for a separate
  # BEAM) makes a flush fail the way a full disk does: the flush returns a
  # clear :io error, every point stays buffered and in the WAL, and once
  # the limit is gone (here: the store reopened without it) nothing is lost.
  use Tms.Case, async: true

  @moduletag timeout: 120_000

  test "a flush that hits a file-size limit fails cleanly and loses nothing", ctx do
    code = """
    Application.ensure_all_started(:tms)
    {:ok, _} = Tms.start_link(name: :child, data_dir: #{inspect(ctx.dir)}, wal_segment_bytes: 65_536, wal_sync: :never, flush_interval: 3_600_000)
    {:ok, id} = Tms.resolve(:child, "noise", %{})
    :rand.seed(:exsss, {1, 2, 3})
    for b <- 0..39 do
      raw = for i <- 0..9_999, into: <<>>, do: <<id::little-64, b * 10_000 + i::little-signed-64, :rand.uniform()::little-float-64>>
      :ok = Tms.write_batch_raw(:child, raw)
    end
    before = Tms.info!(:child).buffered_points
    {:error, error} = Tms.flush(:child)
    IO.puts("flush: \#{error.kind} \#{error.details[:errno]} buffered \#{before} -> \#{Tms.info!(:child).buffered_points}")
    :erlang.halt(0)
    """

    ebin = Path.join(Mix.Project.build_path(), "lib/tms/ebin")
    script = "trap '' XFSZ; ulimit -f 1024; exec elixir -pa #{ebin} -e \"$0\""
    {out, 0} = System.cmd("bash", ["-c", script, code], stderr_to_stdout: true)
    assert out =~ "flush: io efbig buffered 400000 -> 400000", out

    store = start_store(ctx)
    assert %{wal_replayed_points: 400_000} = Tms.info!(store)
    :ok = Tms.flush(store)
    {:ok, [%{points: points}]} = Tms.query_range(store, "noise", %{}, 0, 1_000_000)
    assert length(points) == 400_000
  end
end
