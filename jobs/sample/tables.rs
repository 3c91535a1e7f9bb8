//! Row builders for each generated table, and a writer that rolls over to a new Parquet file
//! every so many rows, so memory stays bounded whatever the scale.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::input::contract::timestamp_utc;

fn ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn finish(schema: &SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema.clone(), columns).expect("builders match their schema")
}

fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

/// `orders` rows.
pub struct Orders {
    pub order_id: StringBuilder,
    pub customer_id: StringBuilder,
    pub order_ts: TimestampMicrosecondBuilder,
    pub amount_usd: Float64Builder,
    pub status: StringBuilder,
    pub market: StringBuilder,
    pub channel: StringBuilder,
    pub items: Int32Builder,
    pub discount_usd: Float64Builder,
    pub coupon_code: StringBuilder,
}

impl Orders {
    pub fn new() -> Self {
        Orders {
            order_id: StringBuilder::new(),
            customer_id: StringBuilder::new(),
            order_ts: ts(),
            amount_usd: Float64Builder::new(),
            status: StringBuilder::new(),
            market: StringBuilder::new(),
            channel: StringBuilder::new(),
            items: Int32Builder::new(),
            discount_usd: Float64Builder::new(),
            coupon_code: StringBuilder::new(),
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            field("order_id", DataType::Utf8, false),
            field("customer_id", DataType::Utf8, false),
            field("order_ts", timestamp_utc(), false),
            field("amount_usd", DataType::Float64, false),
            field("status", DataType::Utf8, false),
            field("market", DataType::Utf8, false),
            field("channel", DataType::Utf8, false),
            field("items", DataType::Int32, false),
            field("discount_usd", DataType::Float64, false),
            field("coupon_code", DataType::Utf8, true),
        ]))
    }

    pub fn batch(&mut self, schema: &SchemaRef) -> RecordBatch {
        finish(
            schema,
            vec![
                Arc::new(self.order_id.finish()),
                Arc::new(self.customer_id.finish()),
                Arc::new(self.order_ts.finish()),
                Arc::new(self.amount_usd.finish()),
                Arc::new(self.status.finish()),
                Arc::new(self.market.finish()),
                Arc::new(self.channel.finish()),
                Arc::new(self.items.finish()),
                Arc::new(self.discount_usd.finish()),
                Arc::new(self.coupon_code.finish()),
            ],
        )
    }
}

/// `customers` rows.
pub struct Customers {
    pub customer_id: StringBuilder,
    pub signup_ts: TimestampMicrosecondBuilder,
    pub market: StringBuilder,
    pub acquisition_channel: StringBuilder,
    pub referrer_customer_id: StringBuilder,
    pub is_member: BooleanBuilder,
}

impl Customers {
    pub fn new() -> Self {
        Customers {
            customer_id: StringBuilder::new(),
            signup_ts: ts(),
            market: StringBuilder::new(),
            acquisition_channel: StringBuilder::new(),
            referrer_customer_id: StringBuilder::new(),
            is_member: BooleanBuilder::new(),
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            field("customer_id", DataType::Utf8, false),
            field("signup_ts", timestamp_utc(), false),
            field("market", DataType::Utf8, false),
            field("acquisition_channel", DataType::Utf8, false),
            field("referrer_customer_id", DataType::Utf8, true),
            field("is_member", DataType::Boolean, false),
        ]))
    }

    pub fn batch(&mut self, schema: &SchemaRef) -> RecordBatch {
        finish(
            schema,
            vec![
                Arc::new(self.customer_id.finish()),
                Arc::new(self.signup_ts.finish()),
                Arc::new(self.market.finish()),
                Arc::new(self.acquisition_channel.finish()),
                Arc::new(self.referrer_customer_id.finish()),
                Arc::new(self.is_member.finish()),
            ],
        )
    }
}

/// `sessions` rows.
pub(crate) struct Sessions {
    pub session_id: StringBuilder,
    pub customer_id: StringBuilder,
    pub session_start_ts: TimestampMicrosecondBuilder,
    pub market: StringBuilder,
    pub device: StringBuilder,
    pub channel: StringBuilder,
}

impl Sessions {
    pub fn new() -> Self {
        Sessions {
            session_id: StringBuilder::new(),
            customer_id: StringBuilder::new(),
            session_start_ts: ts(),
            market: StringBuilder::new(),
            device: StringBuilder::new(),
            channel: StringBuilder::new(),
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            field("session_id", DataType::Utf8, false),
            field("customer_id", DataType::Utf8, true),
            field("session_start_ts", timestamp_utc(), false),
            field("market", DataType::Utf8, false),
            field("device", DataType::Utf8, false),
            field("channel", DataType::Utf8, false),
        ]))
    }

    pub fn batch(&mut self, schema: &SchemaRef) -> RecordBatch {
        finish(
            schema,
            vec![
                Arc::new(self.session_id.finish()),
                Arc::new(self.customer_id.finish()),
                Arc::new(self.session_start_ts.finish()),
                Arc::new(self.market.finish()),
                Arc::new(self.device.finish()),
                Arc::new(self.channel.finish()),
            ],
        )
    }
}

/// `invites` rows.
pub struct Invites {
    pub invite_id: StringBuilder,
    pub inviter_customer_id: StringBuilder,
    pub sent_ts: TimestampMicrosecondBuilder,
    pub share_channel: StringBuilder,
    pub invitee_customer_id: StringBuilder,
    pub accepted_ts: TimestampMicrosecondBuilder,
    pub coupon_code: StringBuilder,
}

impl Invites {
    pub fn new() -> Self {
        Invites {
            invite_id: StringBuilder::new(),
            inviter_customer_id: StringBuilder::new(),
            sent_ts: ts(),
            share_channel: StringBuilder::new(),
            invitee_customer_id: StringBuilder::new(),
            accepted_ts: ts(),
            coupon_code: StringBuilder::new(),
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            field("invite_id", DataType::Utf8, false),
            field("inviter_customer_id", DataType::Utf8, false),
            field("sent_ts", timestamp_utc(), false),
            field("share_channel", DataType::Utf8, false),
            field("invitee_customer_id", DataType::Utf8, true),
            field("accepted_ts", timestamp_utc(), true),
            field("coupon_code", DataType::Utf8, false),
        ]))
    }

    pub fn batch(&mut self, schema: &SchemaRef) -> RecordBatch {
        finish(
            schema,
            vec![
                Arc::new(self.invite_id.finish()),
                Arc::new(self.inviter_customer_id.finish()),
                Arc::new(self.sent_ts.finish()),
                Arc::new(self.share_channel.finish()),
                Arc::new(self.invitee_customer_id.finish()),
                Arc::new(self.accepted_ts.finish()),
                Arc::new(self.coupon_code.finish()),
            ],
        )
    }
}

/// `shipments` rows.
pub(crate) struct Shipments {
    pub order_id: StringBuilder,
    pub shipped_ts: TimestampMicrosecondBuilder,
    pub delivered_ts: TimestampMicrosecondBuilder,
    pub carrier: StringBuilder,
    pub origin_market: StringBuilder,
    pub dest_market: StringBuilder,
}

impl Shipments {
    pub fn new() -> Self {
        Shipments {
            order_id: StringBuilder::new(),
            shipped_ts: ts(),
            delivered_ts: ts(),
            carrier: StringBuilder::new(),
            origin_market: StringBuilder::new(),
            dest_market: StringBuilder::new(),
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            field("order_id", DataType::Utf8, false),
            field("shipped_ts", timestamp_utc(), false),
            field("delivered_ts", timestamp_utc(), true),
            field("carrier", DataType::Utf8, false),
            field("origin_market", DataType::Utf8, false),
            field("dest_market", DataType::Utf8, false),
        ]))
    }

    pub fn batch(&mut self, schema: &SchemaRef) -> RecordBatch {
        finish(
            schema,
            vec![
                Arc::new(self.order_id.finish()),
                Arc::new(self.shipped_ts.finish()),
                Arc::new(self.delivered_ts.finish()),
                Arc::new(self.carrier.finish()),
                Arc::new(self.origin_market.finish()),
                Arc::new(self.dest_market.finish()),
            ],
        )
    }
}

/// `marketing_spend` rows.
pub(crate) struct Spend {
    pub spend_date: Date32Builder,
    pub market: StringBuilder,
    pub channel: StringBuilder,
    pub campaign_id: StringBuilder,
    pub spend_usd: Float64Builder,
    pub impressions: Int64Builder,
    pub clicks: Int64Builder,
}

impl Spend {
    pub fn new() -> Self {
        Spend {
            spend_date: Date32Builder::new(),
            market: StringBuilder::new(),
            channel: StringBuilder::new(),
            campaign_id: StringBuilder::new(),
            spend_usd: Float64Builder::new(),
            impressions: Int64Builder::new(),
            clicks: Int64Builder::new(),
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            field("spend_date", DataType::Date32, false),
            field("market", DataType::Utf8, false),
            field("channel", DataType::Utf8, false),
            field("campaign_id", DataType::Utf8, false),
            field("spend_usd", DataType::Float64, false),
            field("impressions", DataType::Int64, true),
            field("clicks", DataType::Int64, true),
        ]))
    }

    pub fn batch(&mut self, schema: &SchemaRef) -> RecordBatch {
        finish(
            schema,
            vec![
                Arc::new(self.spend_date.finish()),
                Arc::new(self.market.finish()),
                Arc::new(self.channel.finish()),
                Arc::new(self.campaign_id.finish()),
                Arc::new(self.spend_usd.finish()),
                Arc::new(self.impressions.finish()),
                Arc::new(self.clicks.finish()),
            ],
        )
    }
}

/// The planted truth per customer (`_truth/customers`): not an input table; tests and model
/// evaluation compare what the jobs learn against it.
pub(crate) struct Truth {
    pub customer_id: StringBuilder,
    pub true_group: StringBuilder,
    pub dropout_ts: TimestampMicrosecondBuilder,
}

impl Truth {
    pub fn new() -> Self {
        Truth {
            customer_id: StringBuilder::new(),
            true_group: StringBuilder::new(),
            dropout_ts: ts(),
        }
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            field("customer_id", DataType::Utf8, false),
            field("true_group", DataType::Utf8, false),
            field("dropout_ts", timestamp_utc(), false),
        ]))
    }

    pub fn batch(&mut self, schema: &SchemaRef) -> RecordBatch {
        finish(
            schema,
            vec![
                Arc::new(self.customer_id.finish()),
                Arc::new(self.true_group.finish()),
                Arc::new(self.dropout_ts.finish()),
            ],
        )
    }
}

/// Writes one table as `part-00000.parquet`, `part-00001.parquet`, ... below its folder,
/// starting a new file once a file holds `rows_per_file` rows.
pub(crate) struct RollingWriter {
    folder: PathBuf,
    schema: SchemaRef,
    rows_per_file: usize,
    files: usize,
    rows_in_file: usize,
    pub rows: u64,
    writer: Option<ArrowWriter<File>>,
}

impl RollingWriter {
    pub fn new(folder: &Path, schema: SchemaRef, rows_per_file: usize) -> Result<Self> {
        std::fs::create_dir_all(folder).map_err(Error::io(format!("creating {}", folder.display())))?;
        Ok(RollingWriter {
            folder: folder.to_path_buf(),
            schema,
            rows_per_file: rows_per_file.max(1),
            files: 0,
            rows_in_file: 0,
            rows: 0,
            writer: None,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Writes a batch, splitting it where a file fills up.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (self.rows_per_file - self.rows_in_file).min(batch.num_rows() - offset);
            self.write_to_file(&batch.slice(offset, take))?;
            offset += take;
        }
        Ok(())
    }

    fn write_to_file(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.writer.is_none() {
            let path = self.folder.join(format!("part-{:05}.parquet", self.files));
            let file = File::create(&path).map_err(Error::io(format!("creating {}", path.display())))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(
                    ZstdLevel::try_new(3).expect("3 is a zstd level"),
                ))
                .build();
            let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(props))
                .map_err(Error::parquet(format!("opening {}", path.display())))?;
            self.writer = Some(writer);
            self.files += 1;
        }
        let writer = self.writer.as_mut().expect("opened above");
        writer
            .write(batch)
            .map_err(Error::parquet(format!("writing {}", self.folder.display())))?;
        self.rows_in_file += batch.num_rows();
        self.rows += batch.num_rows() as u64;
        if self.rows_in_file >= self.rows_per_file {
            self.close_file()?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(Error::parquet(format!(
                "closing a file in {}",
                self.folder.display()
            )))?;
        }
        self.rows_in_file = 0;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<u64> {
        self.close_file()?;
        Ok(self.rows)
    }
}
