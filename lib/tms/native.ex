defmodule Tms.Native do
  @moduledoc false
  # Stubs for the Rust engine (native/tms_engine/src/nif.rs). Nothing else
  # belongs here: callers go through `Tms`.

  @on_load :load_nif

  def load_nif do
    path = :filename.join(:code.priv_dir(:tms), ~c"native/tms_engine")
    :erlang.load_nif(path, 0)
  end

  def open(_data_dir, _opts), do: :erlang.nif_error(:nif_not_loaded)
  def close(_engine), do: :erlang.nif_error(:nif_not_loaded)
  def resolve(_engine, _metric, _labels), do: :erlang.nif_error(:nif_not_loaded)
  def write_batch(_engine, _entries, _now), do: :erlang.nif_error(:nif_not_loaded)
  def write_raw(_engine, _binary), do: :erlang.nif_error(:nif_not_loaded)
  def query_range(_engine, _metric, _matchers, _from, _to, _opts), do: :erlang.nif_error(:nif_not_loaded)
  def series(_engine, _metric, _matchers, _from, _to), do: :erlang.nif_error(:nif_not_loaded)
  def label_values(_engine, _metric, _label), do: :erlang.nif_error(:nif_not_loaded)
  def metrics(_engine), do: :erlang.nif_error(:nif_not_loaded)
  def flush(_engine, _scope), do: :erlang.nif_error(:nif_not_loaded)
  def delete_before(_engine, _cutoff, _force), do: :erlang.nif_error(:nif_not_loaded)
  def compact(_engine, _idle_ms), do: :erlang.nif_error(:nif_not_loaded)
  def info(_engine), do: :erlang.nif_error(:nif_not_loaded)
  def take_warnings(_engine), do: :erlang.nif_error(:nif_not_loaded)
  def import(_engine, _format, _body, _opts), do: :erlang.nif_error(:nif_not_loaded)
  def import_synced(_engine, _format, _body, _opts), do: :erlang.nif_error(:nif_not_loaded)
  def promql_query(_engine, _query, _time, _opts), do: :erlang.nif_error(:nif_not_loaded)
  def promql_query_range(_engine, _query, _from, _to, _step, _opts), do: :erlang.nif_error(:nif_not_loaded)
end
